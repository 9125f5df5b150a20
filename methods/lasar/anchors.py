"""CoT anchors (PROTOCOL section 6; paper Section 2.3, Appendix E.3): every segment of every
teacher CoT encoded alone, whole, by the Stage-1 backbone; the last token's last-layer hidden
state is the anchor h_t^cot. A segment longer than `max_tokens` (default 512, Table 7's maximum
sequence length) keeps its last `max_tokens` tokens; the share of segments so cut is reported
(Anchors.info, the anchors artifact's info). Batches of segments of similar length, at most
`batch_size` segments and `token_budget` padded tokens each (memory stays bounded however long
the segments); each segment is left-padded with its own position ids, so it computes what it
would alone. Computed once, offline (by every process of a distributed run together),
stored as float16 on the CPU (an artifact: `results/<dataset>/<profile>/_work/anchors-<key>/
anchors.pt`), and moved to the device per batch.
"""
from dataclasses import dataclass

import logging

import numpy as np
import torch

from protocol.progress import progress

from ..lm.decode import sharded_rows

log = logging.getLogger(__name__)


@dataclass
class Anchors:
    """vectors (total segments, D) float16; offsets (n + 1,): example i owns rows
    offsets[i]:offsets[i+1], in segment order."""
    vectors: torch.Tensor
    offsets: torch.Tensor
    info: dict = None           # encode_segments' counts (segments, cut, tokens); not saved

    def counts(self):
        return (self.offsets[1:] - self.offsets[:-1]).long()

    def batch(self, idx, n_max):
        """Anchors of examples `idx`: (B, S, D) float32 with S = min(max count, n_max) step
        anchors, (B,) segment counts, and (B, D) the last segment's anchor (terminal KL)."""
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        start, count = self.offsets[idx], self.counts()[idx]
        S = int(min(count.max(), n_max))
        rows = start[:, None] + torch.arange(S)[None]                     # (B, S)
        rows = torch.minimum(rows, (start + count - 1)[:, None])          # past the end: masked
        return (self.vectors[rows].float(), count,
                self.vectors[start + count - 1].float())


def budget_batches(lengths, batch_size, token_budget):
    """Positions 0..n-1 sorted by `lengths` (stable) and cut into batches of at most
    `batch_size` positions and at most `token_budget` padded tokens (batch size x its longest
    length; a single position longer than the budget is a batch alone). The same in every
    process. -> list of index arrays."""
    order = np.argsort(lengths, kind="stable")
    out, cur = [], []
    for k in order:
        if cur and (len(cur) >= batch_size or (len(cur) + 1) * lengths[k] > token_budget):
            out.append(np.asarray(cur))
            cur = []
        cur.append(k)
    if cur:
        out.append(np.asarray(cur))
    return out


def segment_ids(tok, segments, max_tokens):
    """Token ids of every segment (flattened, in order), each cut to its last `max_tokens`
    (an empty segment is the EOS token). -> (ids, {segments, cut, cut_share, max_tokens,
    longest, mean_tokens}) with the counts before cutting."""
    full = [tok(s, add_special_tokens=False)["input_ids"] or [tok.eos_token_id]
            for ss in segments for s in ss]
    lengths = np.array([len(x) for x in full])
    cut = int((lengths > max_tokens).sum())
    info = {"segments": len(full), "max_tokens": int(max_tokens), "cut": cut,
            "cut_share": cut / len(full) if len(full) else 0.0,
            "longest": int(lengths.max()) if len(full) else 0,
            "mean_tokens": round(float(lengths.mean()), 1) if len(full) else 0.0}
    return [x[-max_tokens:] for x in full], info


@torch.no_grad()
def encode_segments(model, tok, segments, device, max_tokens=512, batch_size=64,
                    token_budget=16384):
    """segments: list (per example) of lists of texts -> Anchors (with `info`: segment_ids'
    counts). Batches of segments of similar length (budget_batches), shared out among the
    processes of a distributed run, every process getting every anchor (methods/lm/decode.py
    sharded_rows)."""
    ids, info = segment_ids(tok, segments, max_tokens)
    log.info("anchors: %d segments, %d (%.1f%%) longer than %d tokens cut to their last %d "
             "(longest %d, mean %.1f tokens)", info["segments"], info["cut"],
             100 * info["cut_share"], max_tokens, max_tokens, info["longest"],
             info["mean_tokens"])
    model = model.to(device).eval()

    def step(number, sel):
        L = max(len(ids[k]) for k in sel)
        x = torch.full((len(sel), L), tok.pad_token_id, dtype=torch.long)
        m = torch.zeros((len(sel), L), dtype=torch.long)
        for r, k in enumerate(sel):                                        # left padding
            x[r, L - len(ids[k]):] = torch.tensor(ids[k])
            m[r, L - len(ids[k]):] = 1
        pos = (m.cumsum(1) - 1).clamp_min(0)
        h = model(input_ids=x.to(device), attention_mask=m.to(device),
                  position_ids=pos.to(device), output_hidden_states=True,
                  logits_to_keep=1).hidden_states[-1][:, -1]
        return {"h": h.float().cpu().half()}
    batches = budget_batches([len(x) for x in ids], batch_size, token_budget)
    with progress(total=len(ids), desc="anchors", unit="segment") as bar:
        out = sharded_rows(batches, step, len(ids), device, bar)["h"]
    offsets = torch.tensor(np.concatenate([[0], np.cumsum([len(ss) for ss in segments])]),
                           dtype=torch.long)
    return Anchors(torch.from_numpy(out), offsets, info)


def save_anchors(anchors, path):
    torch.save({"vectors": anchors.vectors, "offsets": anchors.offsets}, path)


def load_anchors(path):
    d = torch.load(path, map_location="cpu", weights_only=True)
    return Anchors(d["vectors"], d["offsets"])
