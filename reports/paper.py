"""The LASAR paper's published numbers, from paper_numbers.yaml next to this file.

load() gives the whole mapping; lookup(table, dataset, row, metric) gives one number, or None
when the paper does not print it. For table5 the dataset carries the scale: "beauty/small".
"""
from functools import lru_cache
from pathlib import Path

import yaml


@lru_cache(maxsize=None)
def load():
    with open(Path(__file__).with_name("paper_numbers.yaml")) as f:
        return yaml.safe_load(f)


def lookup(table, dataset, row, metric):
    node = load()
    for key in (table, *dataset.split("/"), row, metric):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        return None
    return float(node)
