"""Batches of one task and the forward pass every generative method shares.

Layout of a batch: [head | left-padded suffix (+ answer)]. The head (the task's fixed prompt
start) runs once at batch size 1 and its KV cache is repeated for every row; the rows run on
top of it with position ids that skip their padding, so each row computes exactly what the
whole unpadded prompt would (tests/test_lm_core.py). Left padding puts every row's last
token at the same position: answers end there for training, beams start there for decoding.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from protocol.beam import head_cache


@dataclass
class Batch:
    head: torch.Tensor            # (H,) ids shared by every row
    ids: torch.Tensor             # (B, S) left-padded suffix (+ answer) ids
    mask: torch.Tensor            # (B, S) 1 on real tokens
    labels: torch.Tensor = None   # (B, A) answer ids at the last A positions, -100 elsewhere
    extra: dict = None            # method-specific tensors (LASAR: segment counts, anchors)
    answers_apart: bool = False   # True: ids hold the prompts only, labels the answers after them

    def to(self, device):
        f = lambda t: None if t is None else t.to(device)
        extra = None if self.extra is None else {k: f(v) for k, v in self.extra.items()}
        return Batch(f(self.head), f(self.ids), f(self.mask), f(self.labels), extra,
                     self.answers_apart)


def collate(enc, idx, pad_id, with_answers=True):
    """Rows `idx` of an Encoded task -> Batch."""
    rows = [enc.suffixes[i] + (enc.answers[i] if with_answers else []) for i in idx]
    S = max(map(len, rows))
    ids = torch.full((len(rows), S), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), S), dtype=torch.long)
    for r, row in enumerate(rows):
        ids[r, S - len(row):] = torch.tensor(row)
        mask[r, S - len(row):] = 1
    labels = None
    if with_answers:
        A = max(len(enc.answers[i]) for i in idx)
        labels = torch.full((len(rows), A), -100, dtype=torch.long)
        for r, i in enumerate(idx):
            a = enc.answers[i]
            labels[r, A - len(a):] = torch.tensor(a)
    return Batch(torch.tensor(enc.head, dtype=torch.long), ids, mask, labels)


def make_batch(enc, idx, pad_id):
    """A training/validation batch of rows `idx`: the task's own collate if it has one
    (LASAR's latent tasks), else prompt + answer rows."""
    if hasattr(enc, "collate"):
        return enc.collate(idx, pad_id)
    return collate(enc, idx, pad_id)


def run_rows(model, config, batch, keep, hidden=False):
    """Forward [head | rows]. -> (model output with logits of the last `keep` positions,
    cache, full attention mask (B, H + S), position ids of the rows (B, S))."""
    B = batch.ids.shape[0]
    cache, H = head_cache(model, config, batch.head, B)
    full_mask = torch.cat([batch.mask.new_ones((B, H)), batch.mask], 1)
    pos = H + (batch.mask.cumsum(1) - 1).clamp_min(0)
    out = model(input_ids=batch.ids, attention_mask=full_mask, position_ids=pos,
                past_key_values=cache, use_cache=True, logits_to_keep=keep,
                output_hidden_states=hidden)
    return out, cache, full_mask, pos


def answer_token_logits(model, config, batch):
    """Logits predicting each answer position. -> (B, A, V)."""
    A = batch.labels.shape[1]
    out, *_ = run_rows(model, config, batch, keep=A + 1)
    return out.logits[:, :-1]


def answer_ce(logits, labels):
    """Summed cross-entropy of (B, A, V) logits against (B, A) labels (-100 ignored)."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=-100, reduction="sum")


class AnswerCE(torch.nn.Module):
    """Cross-entropy on answer tokens only (PROTOCOL 3). A module, so DDP can wrap it.

    The objective contract the SFT Trainer relies on: forward(batch) -> (sum of answer-token
    losses, number of answer tokens, aux, logs), where aux is a tensor summed over the batch's
    examples (already weighted; extra loss terms, e.g. LASAR's alignment and policy losses) and
    logs a dict of floats, also sums over examples. `model` is what gets saved."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch):
        logits = answer_token_logits(self.model, self.model.config, batch)
        loss = answer_ce(logits, batch.labels)
        return loss, (batch.labels != -100).sum(), loss.new_zeros(()), {}
