"""HTNet against the mer plugin contract (registration, config, shapes, tiny LOSO, determinism).

Needs the core's roi_flow extractor registered (mercore.builtin); skipped until it is."""
import pytest

from mercore.plugins import load_registry
from mercore.testing import MethodContract

if "roi_flow" not in load_registry(only=()).extractors:
    pytestmark = pytest.mark.skip(reason="roi_flow is not registered in mercore.builtin yet")


class TestContract(MethodContract):
    plugin = "mer_htnet.plugin"
    method = "htnet"
