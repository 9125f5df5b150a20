"""LatentR3: a latent thought from an attention layer over the prompt's states, trained by SFT
and then by RL with a likelihood reward, with no CoT data (method.py)."""
