"""`mer new-plugin`: the generated package is complete, installs with pip and runs LOSO as generated."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mercore.cli import cli
from mercore.scaffold import ScaffoldError, scaffold


def test_scaffold_writes_a_complete_package(tmp_path):
    out = CliRunner().invoke(cli, ["new-plugin", "my_net", "--out", str(tmp_path)])
    assert out.exit_code == 0, out.output
    root = tmp_path / "mer-my-net"
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert files == {"pyproject.toml", "README.md", "mer_my_net/__init__.py", "mer_my_net/plugin.py",
                     "mer_my_net/model.py", "mer_my_net/config.yaml", "tests/test_my_net.py"}
    assert 'my_net = "mer_my_net.plugin"' in (root / "pyproject.toml").read_text()
    assert "class MyNet(Method)" in (root / "mer_my_net" / "plugin.py").read_text()
    config = yaml.safe_load((root / "mer_my_net" / "config.yaml").read_text())
    assert config["features"]["streams"]["flow"]["clips"]["extractor"] == "flow_uvs" and "quick" in config["profiles"]
    method = (root / "mer_my_net" / "plugin.py").read_text()
    assert "def features" not in method and len(method.splitlines()) <= 40  # the YAML declares the streams
    assert not any("${" in (root / f).read_text() for f in files)  # every template field filled
    for path in root.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    with pytest.raises(ScaffoldError, match="already exists"):
        scaffold("my_net", tmp_path)
    with pytest.raises(ScaffoldError, match="invalid plugin name"):
        scaffold("My-Net", tmp_path)


def test_the_docs_install_the_test_extra_the_generated_plugin_declares(tmp_path):
    """A pytest outside the plugin's environment finds no torch: the tutorial and the generated README
    must install the plugin's own test extra and run pytest through that environment's Python."""
    root = scaffold("my_net", tmp_path)
    assert '[project.optional-dependencies]\ntest = ["pytest' in (root / "pyproject.toml").read_text()
    readme = (root / "README.md").read_text()
    assert "pip install -e '.[test]'" in readme and "python -m pytest tests" in readme
    tutorial = (Path(__file__).parents[1] / "docs" / "writing-a-plugin.md").read_text()
    assert "pip install -e './mer-mynet[test]'" in tutorial and "python -m pytest tests" in tutorial


def test_a_name_taken_by_a_known_plugin_is_refused(tmp_path):
    out = CliRunner().invoke(cli, ["new-plugin", "dfrnet", "--out", str(tmp_path)])
    assert out.exit_code == 1 and list(tmp_path.iterdir()) == []
    assert out.output == ("Error: plugin name 'dfrnet' is taken: registry.yaml lists it (mer-dfrnet); it is installed "
                          "(mer-dfrnet); choose another name (two plugins registering one name clash)\n")


@pytest.mark.slow
def test_generated_plugin_installs_and_runs_loso(tmp_path):
    """pip install -e into this environment, `mer run` on 3 synthetic subjects, pip uninstall."""
    name = f"scaf{os.getpid()}"
    root = scaffold(name, tmp_path)
    pip = [sys.executable, "-m", "pip"]
    mer = str(Path(sys.executable).with_name("mer"))
    subprocess.run([*pip, "install", "-q", "-e", str(root), "--no-deps", "--no-build-isolation"], check=True,
                   capture_output=True, timeout=180)
    try:
        out = subprocess.run([mer, "run", "--plugin", name, "--no-tracking", "-q", "--cache-dir", str(tmp_path / "c"),
                              "--subjects", "sub01", "--subjects", "sub02", "--subjects", "sub03",
                              "-D", "subjects=3", "-D", "clips_per_subject=4", "-D", "size=64",
                              "--set", "train.epochs=2"], capture_output=True, text=True, timeout=240,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert out.returncode == 0, out.stderr[-2000:]
        assert f"{name} on synthetic [megc3], profile quick: LOSO over 3 subjects" in out.stdout
        assert "| majority baseline |" in out.stdout
    finally:
        subprocess.run([*pip, "uninstall", "-y", "-q", f"mer-{name}"], check=True, capture_output=True, timeout=120)


def test_cli_reference_is_current():
    """docs/cli.md is generated from the CLI (python docs/gen_cli.py): regenerate after changing a command."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "docs" / "gen_cli.py"
    spec = importlib.util.spec_from_file_location("gen_cli", path)
    gen_cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_cli)
    assert gen_cli.OUT.read_text() == gen_cli.render(), "docs/cli.md is stale: run python docs/gen_cli.py"
