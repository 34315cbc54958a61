"""The README's installs use the lock, and this environment is the locked one."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from mercore.environment import NUMERIC_LIBRARIES, distribution_version

REPO = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;]+)")


def locked() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            match = PIN.match(line)
            assert match, f"requirements.lock: not a pin: {line!r}"
            pins[match[1].lower()] = match[2]
    return pins


def test_both_requirement_files_install_under_the_lock():
    assert "-c requirements.lock" in (REPO / "requirements.txt").read_text().splitlines()
    assert "-r requirements.txt" in (REPO / "requirements-dev.txt").read_text().splitlines()
    pins = locked()
    assert pins["torch"] == "2.13.0", "torch is pinned without a local tag, so CPU and CUDA builds both satisfy it"
    for name in ("numpy", "scikit-image", "opencv-python-headless", "mlflow", "pytest", "scikit-learn"):
        assert name in pins, name


def test_this_environment_has_the_locked_numeric_libraries():
    pins = locked()
    for label, names in NUMERIC_LIBRARIES.items():
        name = next((n for n in names if n in pins), None)
        installed = distribution_version(*names)
        if name is None or installed is None:
            pytest.fail(f"{label}: not in the lock or not installed")
        assert installed.split("+")[0] == pins[name], (
            f"{name} {installed} is installed, the lock says {pins[name]}: install with "
            f"`pip install -r requirements-dev.txt` (figures and test margins were measured on the lock)")
