"""Compatibility fixes for RecBole 1.2.1 on numpy 2 and torch >= 2.6 (../shared/NOTES.md).

Import `recbole` only through `import_recbole()`, which applies these first.
"""
import numpy as np

_NUMPY_ALIASES = {"float_": np.float64, "complex_": np.complex128, "unicode_": np.str_,
                  "bool8": np.bool_}


def import_recbole():
    import warnings
    # RecBole 1.2.1 trips pandas/torch deprecation warnings on every run; they are noise here
    # (our atomic files have no missing values for its fillna calls to fill).
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole(\.|$)")
    # numpy 2 removed these aliases; RecBole's Config still reads them.
    for alias, target in _NUMPY_ALIASES.items():
        if not hasattr(np, alias):
            setattr(np, alias, target)
    import recbole  # noqa: F401  (the lower-level API below avoids quick_start's ray import)
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer
    return Config, create_dataset, data_preparation, get_model, get_trainer


def load_checkpoint(path):
    """RecBole's checkpoints hold a Config object, which torch's weights_only default rejects."""
    import torch
    return torch.load(path, map_location="cpu", weights_only=False)
