"""DFR-Net against the mer plugin contract (registration, config, shapes, tiny LOSO, determinism)."""
from mercore.testing import MethodContract


class TestContract(MethodContract):
    plugin = "mer_dfrnet.plugin"
    method = "dfrnet"
    tiny_overrides = {"train.epochs": 2, "features.size": 32}
