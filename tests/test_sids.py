import json

import numpy as np
import pytest

from protocol.schema import build, replace
from protocol.settings import SidsConfig
from protocol.sids import break_collisions, build_or_load, item_text, residual_kmeans
from recdata import load_dataset

from .conftest import write_dataset

CFG = build(SidsConfig, {"embedder": "minilm", "levels": 4, "codes": 8, "kmeans_iters": 20,
                        "kmeans_restarts": 1, "seed": 0, "embed_batch_size": 16}, "sids")


def test_item_text_order_and_no_repeats():
    rec = {"title": "Tent X", "brand": "Acme", "categories": ["Sports", "Camping"],
           "keywords": "two person tent", "attributes": ["Acme", "Sports", "Waterproof"]}
    assert item_text(rec) == ("Title: Tent X. Brand: Acme. Categories: Sports > Camping. "
                              "Keywords: two person tent. Attributes: Waterproof.")


def test_hash_embedder_against_a_hand_count():
    """'hash' (the smoke profile's embedder): each word and word pair adds +-1 at its CRC32
    bucket, the row normalised; like texts are nearer than unlike ones."""
    import zlib

    from protocol.sids import hash_embed
    e = hash_embed(["Tent tent", "Camping tent", "Fishing reel", "Tent tent"], dim=64)
    want = np.zeros(64)
    for tok in ("tent", "tent", "tent tent"):
        h = zlib.crc32(tok.encode())
        want[h % 64] += 1 if (h >> 16) & 1 else -1
    assert np.allclose(e[0], want / np.linalg.norm(want))
    assert np.allclose(np.linalg.norm(e, axis=1), 1) and np.array_equal(e[0], e[3])
    assert e[0] @ e[1] > e[0] @ e[2]


def test_residual_kmeans_gives_m_codes_and_reduces_error():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    codes, cents, res = residual_kmeans(x, levels=3, codes=8, iters=15, seed=0)
    assert codes.shape == (300, 3) and codes.min() >= 0 and codes.max() < 8
    norms = [float((r ** 2).sum()) for r in res]
    assert norms[0] > norms[1] > norms[2]            # each level explains more of the vector


def test_restarts_keep_the_lowest_inertia():
    import torch

    from protocol.sids import kmeans
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(400, 8)).astype(np.float32))

    def inertia(c, a):
        return float(((x - c[a]) ** 2).sum())
    one = [inertia(*kmeans(x, 12, 10, seed=s)) for s in (7, 7 + 1000, 7 + 2000)]
    best = inertia(*kmeans(x, 12, 10, seed=7, restarts=3))
    assert best == pytest.approx(min(one))


def test_collisions_broken_by_nearest_free_last_code():
    codes = np.array([[1, 1, 1, 3], [1, 1, 1, 3], [1, 1, 1, 3], [0, 0, 0, 0]])
    order = lambda i, l, p: sorted(range(8), key=lambda c: (abs(c - codes[i, l]), c))
    new, moved = break_collisions(codes, order, 8)
    assert moved == 2
    assert new.tolist() == [[1, 1, 1, 3], [1, 1, 1, 2], [1, 1, 1, 4], [0, 0, 0, 0]]


def test_full_prefix_climbs_a_level_and_overflow_fails():
    codes = np.zeros((4, 2), dtype=int)                    # 2 levels x 2 codes = 4 SIDs
    order = lambda i, l, p: [0, 1]
    new, moved = break_collisions(codes, order, 2)
    assert moved == 3 and len({tuple(r) for r in new.tolist()}) == 4
    with pytest.raises(RuntimeError, match="no free SID"):
        break_collisions(np.zeros((5, 2), dtype=int), order, 2)


def test_built_table_unique_with_identical_texts_and_cached(tmp_path):
    d = write_dataset(tmp_path / "data", n_items=40)
    lines = (d / "items.jsonl").read_text().splitlines()
    recs = [json.loads(l) for l in lines]
    for r in recs[1:6]:                                    # 6 items with identical text
        r.update({k: recs[0][k] for k in ("attributes", "keywords")})
    (d / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    ds = load_dataset("toy", tmp_path / "data")
    t = build_or_load(ds, CFG, tmp_path / "cache")
    rep = t.report()
    assert rep["items"] == rep["distinct_sids"] == 40
    assert rep["moved"] >= 5 and t.codes.shape == (40, 4)
    assert all(len(t.tokens(i)) == 4 for i in range(40))
    assert t.tokens(0)[0].startswith("<a_") and t.tokens(0)[3].startswith("<d_")
    again = build_or_load(ds, CFG, tmp_path / "cache")
    assert again.source == "cache" and np.array_equal(again.codes, t.codes)


def test_published_sids_made_unique(tmp_path):
    d = write_dataset(tmp_path / "data", n_items=40)
    table = {str(i): [f"<a_{i % 5}>", f"<b_{i % 3}>", "<c_7>", f"<d_{i}>"] for i in range(1, 41)}
    table["2"] = list(table["1"])                       # two collisions with item 1
    table["3"] = list(table["1"])
    (d / "published_sids.json").write_text(json.dumps(table))
    ds = load_dataset("toy", tmp_path / "data")
    t = build_or_load(ds, replace(CFG, codes=256), tmp_path / "cache")
    rep = t.report()
    assert rep["distinct_sids"] == 40 and rep["moved"] == 2 and t.source == "published"
    k = ds.item_index
    assert t.tokens(k["1"]) == table["1"]                    # the first keeps its SID
    assert t.tokens(k["2"])[:3] == table["1"][:3]            # movers keep their prefix
    assert {t.tokens(k["2"])[3], t.tokens(k["3"])[3]} == {"<d_0>", "<d_2>"}   # nearest free
