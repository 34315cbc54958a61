"""mer-htnet: HTNet (Wang et al., Neurocomputing 2024) as a mer method plugin.

The method is ``mer_htnet.plugin.HTNet`` (found through the ``mer`` entry point), the network and its
config are in ``mer_htnet.model``. Nothing is imported here, so that loading the entry point
(``mer plugins``) stays free of torch.
"""
__version__ = "0.1.0"
