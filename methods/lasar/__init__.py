"""LASAR: latent loop with Policy Head, two-stage SFT with CoT alignment, RL (paper Sections
2.2-2.4, Appendix E). Registers the method 'lasar'."""
from .method import Lasar

__all__ = ["Lasar"]
