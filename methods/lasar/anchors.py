"""CoT anchors (PROTOCOL section 6; paper Section 2.3, Appendix E.3): every segment of every
teacher CoT encoded alone by the Stage-1 backbone; the last token's last-layer hidden state is
the anchor h_t^cot. Computed once, offline (by every process of a distributed run together),
stored as float16 on the CPU (an artifact: `results/<dataset>/<profile>/_work/anchors-<key>/
anchors.pt`), and moved to the device per batch.
"""
from dataclasses import dataclass

import numpy as np
import torch

from benchmark.protocol.progress import progress

from ..lm.decode import batch_order, sharded_rows


@dataclass
class Anchors:
    """vectors (total segments, D) float16; offsets (n + 1,): example i owns rows
    offsets[i]:offsets[i+1], in segment order."""
    vectors: torch.Tensor
    offsets: torch.Tensor

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


@torch.no_grad()
def encode_segments(model, tok, segments, device, max_tokens=64, batch_size=64):
    """segments: list (per example) of lists of texts -> Anchors. Batches of segments of
    similar length, shared out among the processes of a distributed run, every process
    getting every anchor (methods/lm/decode.py sharded_rows)."""
    flat = [s for ss in segments for s in ss]
    ids = [tok(s, add_special_tokens=False)["input_ids"][-max_tokens:] or [tok.eos_token_id]
           for s in flat]
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
    with progress(total=len(flat), desc="anchors", unit="segment") as bar:
        out = sharded_rows(batch_order([len(x) for x in ids], batch_size), step, len(flat),
                           device, bar)["h"]
    offsets = torch.tensor(np.concatenate([[0], np.cumsum([len(ss) for ss in segments])]),
                           dtype=torch.long)
    return Anchors(torch.from_numpy(out), offsets)


def save_anchors(anchors, path):
    torch.save({"vectors": anchors.vectors, "offsets": anchors.offsets}, path)


def load_anchors(path):
    d = torch.load(path, map_location="cpu", weights_only=True)
    return Anchors(d["vectors"], d["offsets"])
