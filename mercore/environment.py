"""The software a result was computed with, so that a figure can be traced to its environment.

The same code gave MPFNet's README run UF1 0.598 on one install and 0.634 on another: the
numeric libraries below change results, so every run records their versions, and, when mercore
runs from a git checkout, the commit and whether the tree held uncommitted changes.
"""
from __future__ import annotations

import importlib.metadata as md
import platform
import subprocess
from pathlib import Path

#: distributions whose version is recorded for every run; OpenCV ships under several names
NUMERIC_LIBRARIES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "numpy": ("numpy",),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless",
               "opencv-contrib-python"),
    "scikit-image": ("scikit-image",),
}


def distribution_version(*names: str) -> str | None:
    """The installed version of the first of ``names`` that is installed, else None."""
    for name in names:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            continue
    return None


def code_revision(where: Path | None = None) -> dict[str, str]:
    """``git_commit`` and ``git_dirty`` ("yes"/"no") of the checkout holding ``where`` (default:
    mercore's own source); "not a git checkout" for an installed wheel, where the versions tell."""
    where = where or Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "not a git checkout", "git_dirty": "unknown"}
    return {"git_commit": commit, "git_dirty": "yes" if dirty else "no"}


def software_versions(plugin_distribution: str | None = None) -> dict[str, str]:
    """Python, mercore, the method's plugin distribution, the numeric libraries and the code
    revision, by name."""
    found = {"python": platform.python_version(), "mercore": distribution_version("mercore")}
    if plugin_distribution:
        found[plugin_distribution] = distribution_version(plugin_distribution)
    found.update({label: distribution_version(*dists) for label, dists in NUMERIC_LIBRARIES.items()})
    return {**{k: v or "not installed" for k, v in found.items()}, **code_revision()}
