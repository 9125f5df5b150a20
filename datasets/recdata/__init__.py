"""Dataset readers, validation and the leave-one-out split (PROTOCOL section 1).

Importable as `recdata` (the folder `datasets/` is deliberately not a Python package, so it
never shadows Hugging Face's `datasets`, which trl and transformers import).
"""
from .prepared import Dataset, load_dataset, resolve_data_dir, KNOWN_DATASETS
from .split import Examples, Split, make_split

__all__ = ["Dataset", "load_dataset", "resolve_data_dir", "KNOWN_DATASETS",
           "Examples", "Split", "make_split"]
