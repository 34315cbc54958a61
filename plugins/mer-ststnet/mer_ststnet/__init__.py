"""mer-ststnet: STSTNet (Liong et al., FG 2019) as a mer method plugin.

The method is ``mer_ststnet.plugin.STSTNet`` (found through the ``mer`` entry point), the network and its
config are in ``mer_ststnet.model``. Nothing is imported here, so that loading the entry point
(``mer plugins``) stays free of torch.
"""
__version__ = "0.1.0"
