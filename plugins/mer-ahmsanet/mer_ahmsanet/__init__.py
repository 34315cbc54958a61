"""mer-ahmsanet: AHMSA-Net as a mer method plugin.

The method is ``mer_ahmsanet.plugin.AHMSANet`` (found through the ``mer`` entry point), the network and its
config are in ``mer_ahmsanet.model``. Nothing is imported here, so that loading the entry point
(``mer plugins``) stays free of torch.
"""
__version__ = "0.1.0"
