"""LASAR: latent loop with Policy Head, two-stage SFT with CoT alignment, RL (paper Sections
2.2-2.4, Appendix E). The method is `method.Lasar` (registered in methods/__init__.py); this
package imports nothing on its own, so its configuration schema (`config.py`) loads without
torch."""
