"""Every run names the software it was computed with."""
from __future__ import annotations

import importlib.metadata as md

import numpy
import torch

from mercore.environment import distribution_version, software_versions
from mercore.plugins import load_registry


def test_versions_of_the_numeric_libraries_and_the_plugin():
    found = software_versions("pluggy")
    assert found["torch"] == torch.__version__ and found["numpy"] == numpy.__version__
    assert found["pluggy"] == md.version("pluggy")
    assert found["opencv"] != "not installed" and found["scikit-image"] != "not installed"
    assert software_versions("no-such-distribution")["no-such-distribution"] == "not installed"


def test_first_installed_name_wins():
    assert distribution_version("no-such-distribution", "numpy") == numpy.__version__
    assert distribution_version("no-such-distribution") is None


def test_registry_knows_the_distribution_of_an_installed_method():
    registry = load_registry(only=["ststnet"])
    assert registry.distribution_of("ststnet") == "mer-ststnet"
    assert registry.distribution_of("no-such-method") is None


def test_code_revision_of_a_checkout(tmp_path):
    """The commit and the dirty flag come from git; outside a checkout the record says so."""
    import subprocess

    from mercore.environment import code_revision

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    assert code_revision(tmp_path) == {"git_commit": "not a git checkout", "git_dirty": "unknown"}
    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("commit", "-q", "-m", "one")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert code_revision(tmp_path) == {"git_commit": head, "git_dirty": "no"}
    (tmp_path / "a.py").write_text("x = 2\n")
    assert code_revision(tmp_path) == {"git_commit": head, "git_dirty": "yes"}


def test_every_run_records_the_code_revision():
    found = software_versions("pluggy")
    assert found["git_commit"] and found["git_dirty"] in ("yes", "no", "unknown")
