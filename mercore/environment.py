"""The software a result was computed with, so that a figure can be traced to its environment.

The same code gave MPFNet's README run UF1 0.598 on one install and 0.634 on another: the
numeric libraries below change results, so every run records their versions.
"""
from __future__ import annotations

import importlib.metadata as md
import platform

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


def software_versions(plugin_distribution: str | None = None) -> dict[str, str]:
    """Python, mercore, the method's plugin distribution and the numeric libraries, by name."""
    found = {"python": platform.python_version(), "mercore": distribution_version("mercore")}
    if plugin_distribution:
        found[plugin_distribution] = distribution_version(plugin_distribution)
    found.update({label: distribution_version(*dists) for label, dists in NUMERIC_LIBRARIES.items()})
    return {k: v or "not installed" for k, v in found.items()}
