"""Semantic segmentation of teacher CoTs (PROTOCOL section 6; paper Section 2.3, Appendix F).

A CoT is split into sentences (line breaks and sentence ends); consecutive sentences are
embedded with the sentence-embedding model (all-MiniLM-L6-v2 offline; the paper uses
bge-small-en-v1.5) and a segment boundary is placed wherever the cosine similarity of two
neighbours falls below `threshold`. The segment count, clipped to 1..N_max, is the Policy
Head's SFT label. Identical sentences are embedded once (the template teacher repeats many).

A segment that would be a bare heading (Appendix E.2's "Step 2: Modeling of Latent
Preferences": a short sentence with no sentence end; its neighbours' similarity to it is low,
so it is cut off on both sides) opens the segment after it instead: alone, its anchor would be
the same vector for every user. On the paper's own example chain (Appendix E.2) this gives 4
segments, its three steps and the recommendation line, where bare headings would give 7.
"""
import re

import numpy as np

# keys the segments artifact (methods/lasar/pool.py) with the rule: change it with the rule
SEGMENTATION_VERSION = 3                 # 2: a bare heading opens the segment after it;
                                         # 3: only a title-case 'Step N' line is one
_SENT = re.compile(r"(?<=[.!?])\s+|\n+")
HEADING_MAX_WORDS = 12
_STEP = re.compile(r"^step\s*\d+\s*[:.\-\u2013]?\s*(.*)$", re.I)


def sentences(text):
    return [s.strip() for s in _SENT.split(text) if s and s.strip()]


def is_heading(sentence):
    """A short sentence with no sentence end that reads as a heading: it ends with a colon,
    is a Markdown heading ('# ...', '**...**'), or is 'Step N' followed by a title in title
    case ('Step 2: Modeling of Latent Preferences'). A step line that says something ('Step 1:
    the user bought a tent', as a local model may write without a period) is content."""
    s = sentence.strip()
    bare = s.strip("*#").strip()
    if not bare or bare[-1] in ".!?" or len(bare.split()) > HEADING_MAX_WORDS:
        return False
    if bare.endswith(":") or s.startswith("#") or (s.startswith("**") and s.endswith("**")):
        return True
    step = _STEP.match(bare)
    return bool(step) and all(w[0].isupper() for w in step.group(1).split()
                              if len(w) > 3 and w[0].isalpha())


def embed_unique(all_sentences, spec, batch_size=128):
    """-> (dict sentence -> row, (U, d) float32 normalised embeddings)."""
    from protocol.sids import embed
    uniq = sorted(set(all_sentences))
    index = {s: k for k, s in enumerate(uniq)}
    emb = np.asarray(embed(uniq, spec, batch_size), dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True) + 1e-12
    return index, emb


def boundaries(emb, threshold):
    """Sentence embeddings (n, d), normalised -> start index of every segment (first is 0)."""
    if len(emb) < 2:
        return [0]
    sim = (emb[1:] * emb[:-1]).sum(1)                                     # (n - 1,)
    return [0] + [k + 1 for k in np.flatnonzero(sim < threshold).tolist()]


def segment_cots(cots, spec, threshold, batch_size=128):
    """-> list (one per CoT) of segment texts."""
    sents = [sentences(c) or [c] for c in cots]
    index, emb = embed_unique([s for ss in sents for s in ss], spec, batch_size)
    out = []
    for ss in sents:
        starts = boundaries(emb[[index[s] for s in ss]], threshold)
        # a segment that is a bare heading opens the segment after it (module docstring)
        starts = [a for k, a in enumerate(starts) if k == 0 or not (
            starts[k - 1] == a - 1 and is_heading(ss[a - 1]))] + [len(ss)]
        out.append([" ".join(ss[a:b]) for a, b in zip(starts[:-1], starts[1:])])
    return out


def complexity_table(counts, hist_len, cat_div, n_max):
    """Table 8 data: per clipped segment count, share of samples, mean history length, mean
    category diversity. -> list of dicts sorted by count."""
    c = np.clip(np.asarray(counts), 1, n_max)
    rows = []
    for k in np.unique(c):
        m = c == k
        rows.append({"segments": int(k), "share": float(m.mean()), "n": int(m.sum()),
                     "hist_len": float(np.mean(np.asarray(hist_len)[m])),
                     "cat_div": float(np.mean(np.asarray(cat_div)[m]))})
    return rows
