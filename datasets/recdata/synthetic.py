"""A synthetic dataset in the prepared format, for the tests and `doctor`'s micro-run: users walk
forward through the catalog, so a sequential model can beat chance."""
import json
from pathlib import Path

import numpy as np


def write_walk_dataset(root, name="toy", n_users=60, n_items=40, seed=0, min_len=4, max_len=12):
    """A prepared-format dataset with learnable structure: users walk forward through the
    catalog (item i is usually followed by item i+1), so a sequential model can beat chance."""
    rng = np.random.default_rng(seed)
    d = Path(root) / name
    d.mkdir(parents=True, exist_ok=True)
    cats = ["Outdoors", "Fitness", "Cycling", "Camping"]
    with open(d / "items.jsonl", "w") as f:
        for i in range(1, n_items + 1):
            f.write(json.dumps({
                "item_id": str(i), "asin": f"A{i:05d}", "title": None, "brand": None,
                "categories": None,
                "attributes": [f"Brand{i % 7}", "Sports", cats[i % 4]],
                "keywords": f"{cats[i % 4].lower()} gear model {i % 9}",
                "description": None}) + "\n")
    with open(d / "sequences.txt", "w") as f:
        for u in range(1, n_users + 1):
            L = int(rng.integers(min_len, max_len + 1))
            start = int(rng.integers(1, n_items + 1))
            seq = [((start - 1 + k) % n_items) + 1 for k in range(L)]
            f.write(" ".join([str(u)] + [str(i) for i in seq]) + "\n")
    return d
