"""mer-moext: MoExt (motion extraction with pre-training) as a mer method plugin.

The method is ``mer_moext.plugin.MoExt`` (found through the ``mer`` entry point), the network and its
config are in ``mer_moext.model``. Nothing is imported here, so that loading the entry point
(``mer plugins``) stays free of torch.
"""
__version__ = "0.1.0"
