import gzip
import json

from recdata import load_dataset
from recdata.amazon_raw import convert, k_core


def _gz(path, lines):
    with gzip.open(path, "wt") as f:
        f.write("".join(l + "\n" for l in lines))


def test_k_core_is_iterative():
    # round 1 drops u4 (1 interaction) and item d (1 user); that leaves u3 with only c and
    # c with only u3, so round 2 drops them too: a single pass would keep (u3, c)
    rows = [("u1", "a", 1, 0), ("u1", "b", 2, 1), ("u2", "a", 1, 2), ("u2", "b", 2, 3),
            ("u3", "c", 1, 4), ("u3", "d", 2, 5), ("u4", "c", 1, 6)]
    kept = k_core(rows, k=2)
    assert sorted((u, i) for u, i, *_ in kept) == [("u1", "a"), ("u1", "b"), ("u2", "a"),
                                                   ("u2", "b")]


def test_convert_orders_chronologically_and_reads_both_formats(tmp_path):
    reviews = []
    for u in range(6):
        for i in range(5):
            t = 1000 + (4 - i) * 10 + u         # written newest first: must be reordered
            rec = {"reviewerID": f"U{u}", "asin": f"I{i}", "unixReviewTime": t}
            reviews.append(json.dumps(rec) if u % 2 else repr(rec))   # 2014 python literals
    reviews.append(json.dumps({"reviewerID": "U9", "asin": "I0", "unixReviewTime": 5}))
    meta = [repr({"asin": f"I{i}", "title": f"Item {i}", "brand": "B",
                  "categories": [["Sports & Outdoors", "Cycling"]]}) for i in range(5)]
    _gz(tmp_path / "reviews.json.gz", reviews)
    _gz(tmp_path / "meta.json.gz", meta)
    users, items, inter = convert(tmp_path / "reviews.json.gz", tmp_path / "meta.json.gz",
                                  tmp_path / "data" / "mini", k=5)
    assert (users, items, inter) == (6, 5, 30)                     # U9 dropped by 5-core
    ds = load_dataset("mini", tmp_path / "data")
    asin = {r["item_id"]: r["asin"] for r in ds.items}
    for seq in ds.sequences:
        assert [asin[ds.item_ids[i]] for i in seq] == ["I4", "I3", "I2", "I1", "I0"]
    rec = ds.items[0]
    assert rec["title"].startswith("Item ") and rec["categories"] == ["Sports & Outdoors",
                                                                      "Cycling"]
