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
