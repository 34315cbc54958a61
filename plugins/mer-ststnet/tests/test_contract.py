"""STSTNet against the mer plugin contract (registration, config, shapes, tiny LOSO, determinism).

The tiny run sets every `*.epochs` of the config to 1 (mercore.testing) unless the plugin
module defines `tiny_overrides`."""
from mercore.testing import MethodContract


class TestContract(MethodContract):
    plugin = "mer_ststnet.plugin"
    method = "ststnet"
