"""The LASAR paper's published numbers, from paper_numbers.yaml next to this file.

load() gives the whole mapping: table -> dataset (for table5 also the scale, "small" or
"large") -> row -> field -> number.
"""
from functools import lru_cache
from pathlib import Path

import yaml


@lru_cache(maxsize=None)
def load():
    with open(Path(__file__).with_name("paper_numbers.yaml")) as f:
        return yaml.safe_load(f)
