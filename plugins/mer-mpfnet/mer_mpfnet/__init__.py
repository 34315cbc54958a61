"""MPFNet for the mer framework: CA-I3D encoders, GFE/AFE prior learning, prototypical meta-learning.

The method is ``mer_mpfnet.method.MPFNet`` (found through the ``mer`` entry point), the network and its
config are in ``mer_mpfnet.model``. Nothing is imported here, so that loading the entry point
(``mer plugins``) stays free of torch.
"""
__version__ = "0.1.0"
