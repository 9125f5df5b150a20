"""A backbone with a small module of its own (LASAR's Policy Head, LatentR3's thought
attention), saved and loaded as one model: the backbone's folder (save_pretrained) plus the
module's state dict in one file (sft.save_model / sft.load_weights call these)."""
from pathlib import Path

import torch


class WrappedLM(torch.nn.Module):
    """Subclasses set `lm` and the module named by `extra_attr`, saved as `extra_file`."""
    extra_attr = None
    extra_file = None

    @property
    def config(self):
        return self.lm.config

    def save_pretrained(self, folder):
        self.lm.save_pretrained(folder)
        torch.save(getattr(self, self.extra_attr).state_dict(), Path(folder) / self.extra_file)

    def load_folder(self, folder):
        from .sft import load_weights
        extra = torch.load(Path(folder) / self.extra_file, map_location="cpu",
                           weights_only=True)         # read first: a bad file changes nothing
        load_weights(self.lm, folder)
        getattr(self, self.extra_attr).load_state_dict(extra)
