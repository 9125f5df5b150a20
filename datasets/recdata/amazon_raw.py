"""Raw Amazon review + metadata files (McAuley et al. 2014/2018) -> the prepared format.

Reviews: gzipped JSON lines with reviewerID, asin, unixReviewTime (the 2014 files are Python
dict literals, the 2018 files strict JSON; both are read). Metadata: gzipped lines with asin and
optional title, brand, categories (2014, list of paths) or category (2018, one path),
description. Output: sequences.txt and items.jsonl as in ../shared/datasets/README.md.
"""
import ast
import json
from collections import Counter, defaultdict
from pathlib import Path

from protocol.errors import InputError
from protocol.io import atomic_write_text, jsonl_text, text_lines


def _records(path):
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "missing; pass the gzipped Amazon reviews/metadata file")
    for lineno, line in text_lines(path):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError:
            try:
                yield lineno, ast.literal_eval(line)
            except (ValueError, SyntaxError):
                raise InputError(path, "malformed record: neither JSON nor a Python dict "
                                       "literal", lineno) from None


def read_reviews(path):
    """(user, asin, time, order) tuples; `order` keeps file order for equal timestamps."""
    out = []
    for lineno, r in _records(path):
        try:
            out.append((str(r["reviewerID"]), str(r["asin"]), int(r["unixReviewTime"]), lineno))
        except (KeyError, TypeError, ValueError):
            raise InputError(path, "review needs reviewerID, asin and an integer "
                                   "unixReviewTime", lineno) from None
    return out


def k_core(reviews, k=5):
    """Iteratively drop users and items with fewer than k interactions until stable."""
    pairs = {}
    for u, i, t, o in reviews:            # one interaction per (user, item): keep the earliest
        if (u, i) not in pairs or (t, o) < pairs[(u, i)][2:]:
            pairs[(u, i)] = (u, i, t, o)
    rows = list(pairs.values())
    while True:
        uc, ic = Counter(r[0] for r in rows), Counter(r[1] for r in rows)
        kept = [r for r in rows if uc[r[0]] >= k and ic[r[1]] >= k]
        if len(kept) == len(rows):
            return kept
        rows = kept


def _meta_record(r):
    cats = r.get("categories") or ([r["category"]] if r.get("category") else None)
    path = cats[0] if cats and isinstance(cats[0], list) else cats
    desc = r.get("description")
    if isinstance(desc, list):
        desc = " ".join(desc)
    return {"title": r.get("title") or None, "brand": r.get("brand") or None,
            "categories": list(path) if path else None, "description": desc or None}


def convert(reviews_path, meta_path, out_dir, k=5):
    """Write out_dir/sequences.txt and out_dir/items.jsonl; returns (users, items, interactions)."""
    rows = k_core(read_reviews(reviews_path), k)
    if not rows:
        raise InputError(reviews_path, f"no user and item survive {k}-core filtering")
    by_user = defaultdict(list)
    for u, i, t, o in rows:
        by_user[u].append((t, o, i))
    meta = {}
    if meta_path:
        for _, r in _records(meta_path):
            if "asin" in r:
                meta[str(r["asin"])] = _meta_record(r)
    users = sorted(by_user, key=lambda u: min(by_user[u]))   # users in order of first action
    item_id = {}
    lines = []
    for n, u in enumerate(users, 1):
        seq = [i for _, _, i in sorted(by_user[u])]           # chronological, ties by file order
        for i in seq:
            item_id.setdefault(i, str(len(item_id) + 1))
        lines.append(" ".join([str(n)] + [item_id[i] for i in seq]) + "\n")
    items = []
    for asin, iid in item_id.items():
        m = meta.get(asin, {})
        attrs = [a for a in [m.get("brand")] + (m.get("categories") or []) if a] or None
        items.append({"item_id": iid, "asin": asin, "title": m.get("title"),
                      "brand": m.get("brand"), "categories": m.get("categories"),
                      "attributes": attrs, "keywords": None, "description": m.get("description")})
    out = Path(out_dir)
    atomic_write_text(out / "items.jsonl", jsonl_text(items))
    atomic_write_text(out / "sequences.txt", "".join(lines))
    return len(users), len(items), len(rows)
