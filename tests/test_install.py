"""`mer plugins install`: the pip command for registry entries and clear errors for the rest."""
from __future__ import annotations

import sys

import pytest
import yaml
from click.testing import CliRunner

from mercore.cli import cli
from mercore.install import InstallError, pip_command


@pytest.fixture
def registry_file(tmp_path, monkeypatch):
    (tmp_path / "plugins" / "mer-local").mkdir(parents=True)
    (tmp_path / "plugins" / "mer-local" / "pyproject.toml").write_text("[project]\nname = 'mer-local'\n")
    entries = {"local": {"distribution": "mer-local", "source": "plugins/mer-local", "status": "available"},
               "remote": {"distribution": "mer-remote", "source": "plugins/mer-remote", "status": "available"},
               "later": {"distribution": "mer-later", "source": "plugins/mer-later", "status": "planned"}}
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"schema": 1, "plugins": entries}))
    monkeypatch.setenv("MER_REGISTRY", str(path))
    return path


def test_local_source_installs_editable_else_the_distribution(registry_file):
    pip = [sys.executable, "-m", "pip", "install"]
    assert pip_command("local") == [*pip, "-e", str((registry_file.parent / "plugins" / "mer-local").resolve())]
    assert pip_command("remote") == [*pip, "mer-remote"]  # no source folder here: from the package index
    with pytest.raises(InstallError, match="'later' is planned"):
        pip_command("later")


def test_cli_dry_run_and_unknown_name(registry_file):
    out = CliRunner().invoke(cli, ["plugins", "install", "local", "--dry-run"])
    assert out.exit_code == 0 and out.output.strip().endswith(f"pip install -e {registry_file.parent / 'plugins' / 'mer-local'}")
    bad = CliRunner().invoke(cli, ["plugins", "install", "nosuch"])
    assert bad.exit_code != 0
    assert "unknown plugin 'nosuch': not in registry.yaml; choose one of: later, local, remote" in bad.output


def test_repository_registry_points_at_existing_plugin_folders(monkeypatch):
    monkeypatch.delenv("MER_REGISTRY", raising=False)
    command = pip_command("dfrnet")
    assert command[-2] == "-e" and command[-1].endswith("plugins/mer-dfrnet")


@pytest.mark.slow
def test_registry_ships_in_the_wheel_and_is_read_from_it(tmp_path, monkeypatch):
    """`mer plugins` from an installed wheel shows the catalogue: registry.yaml is package data."""
    import subprocess
    import zipfile
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(repo)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("mercore-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = zf.read("mercore/registry.yaml").decode()
        zf.extractall(tmp_path / "site")
    assert shipped == (repo / "registry.yaml").read_text()
    monkeypatch.delenv("MER_REGISTRY", raising=False)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "  # the unpacked wheel, not the editable checkout
            "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in type(f).__module__]; "
            "import pathlib, mercore.catalogue as c; p = c.catalogue_path(); "
            "print(p.parent.name, p.parent.parent == pathlib.Path(sys.argv[1]), len(c.read_catalogue()))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "site")], check=True, capture_output=True,
                         text=True)
    folder, inside_wheel, count = out.stdout.split()
    assert folder == "mercore" and inside_wheel == "True" and int(count) >= 7
