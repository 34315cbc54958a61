"""MPFNet against the mer plugin contract (registration, config, shapes, tiny LOSO, determinism)."""
from mercore.testing import MethodContract


class TestContract(MethodContract):
    plugin = "mer_mpfnet.plugin"
    method = "mpfnet"
    tiny_overrides = {"gfe.epochs": 1, "afe.train.epochs": 1, "meta_learning.epochs": 1,
                      "meta_learning.episodes_per_epoch": 2, "meta_learning.k_shot": 1, "meta_learning.q_query": 1}
