"""MPFNet for the mer framework: CA-I3D encoders, GFE/AFE prior learning, prototypical meta-learning."""
from .method import MPFNet

__all__ = ["MPFNet"]
