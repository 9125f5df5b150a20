"""LASAR's Stage-2 SFT data and objective (paper Section 2.3, Appendix E.1 and E.3).

L_SFT = L_CE + alpha_align L_align + beta_policy L_policy, with N = argmax of the Policy Head,
L_CE on the answer tokens after `<e>`, L_align the step-wise alignment of Eq. 4 (bidirectional
KL by default; cosine, MSE or none for Table 2), L_policy the Policy Head's cross-entropy to the
CoT segment count. Plugs into the shared SFT Trainer (methods/lm/sft.py) as its objective.
"""
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..lm.forward import Batch, answer_ce, answer_token_logits, collate
from ..lm.tasks import Encoded
from .latent import ALIGNMENTS, policy_labels, stepwise_alignment


@dataclass
class LatentTask(Encoded):
    """Sequential-recommendation prompts ending in `<s>`, answers kept apart (the latent slots
    go between), and, for training, each example's CoT anchors."""
    anchors: object = None          # Anchors (rows in example order) or None (validation)
    n_max: int = 8

    def collate(self, idx, pad_id):
        b = collate(self, idx, pad_id, with_answers=False)
        labels = (None if self.answers is None else                                   # (B, A)
                  torch.tensor([self.answers[i] for i in idx], dtype=torch.long))
        extra = None
        if self.anchors is not None:
            steps, counts, last = self.anchors.batch(idx, self.n_max)
            extra = {"anchors": steps, "segments": counts, "last_anchor": last}
        return Batch(b.head, b.ids, b.mask, labels, extra, answers_apart=True)

    def subset(self, idx):
        """Examples `idx` as a new task (anchors re-indexed)."""
        from .anchors import Anchors
        idx = np.asarray(idx)
        anchors = None
        if self.anchors is not None:
            a, counts = self.anchors, self.anchors.counts()
            rows = torch.cat([torch.arange(int(a.offsets[i]), int(a.offsets[i + 1])) for i in idx])
            offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts[idx].cumsum(0)])
            anchors = Anchors(a.vectors[rows], offsets)
        return LatentTask(self.task, self.head, [self.suffixes[i] for i in idx],
                          None if self.answers is None else [self.answers[i] for i in idx],
                          anchors, self.n_max)


def latent_task(codec, examples, start_id, anchors=None, n_max=8, with_answers=True):
    enc = codec.seqrec(examples, with_answers=with_answers)
    return LatentTask("latent_seqrec", enc.head, [s + [start_id] for s in enc.suffixes],
                      enc.answers, anchors, n_max)


class LatentSFT(torch.nn.Module):
    """The objective (AnswerCE's contract). Batches that are not latent (the Stage-1 item tasks
    mixed in by the single-stage variant) get the plain answer CE: their steps leave the
    Policy Head without a gradient (`skips_parameters`, for DDP: methods/lm/sft.py Trainer)."""
    skips_parameters = True

    def __init__(self, latent, align="kl", align_weight=0.1, policy_weight=0.1):
        super().__init__()
        if align not in ALIGNMENTS:
            raise ValueError(f"unknown alignment '{align}'; choose from {sorted(ALIGNMENTS)}")
        self.model = latent
        self.dist = ALIGNMENTS[align]
        self.align_weight, self.policy_weight = align_weight, policy_weight

    def forward(self, batch):
        latent = self.model
        if not batch.answers_apart:
            logits = answer_token_logits(latent.lm, latent.config, batch)
            loss = answer_ce(logits, batch.labels)
            return loss, (batch.labels != -100).sum(), loss.new_zeros(()), {}
        out = latent.run(batch, n_mode="argmax")
        pi_logits, n, states = out.policy_logits, out.n, out.states
        logits = latent.answer_logits(out.stepper, batch.labels)            # (B, A, V)
        ce = answer_ce(logits, batch.labels)
        aux, logs = ce.new_zeros(()), {"mean_n": float(n.sum())}
        if batch.extra is not None:
            seg = batch.extra["segments"]
            l_pol = F.cross_entropy(pi_logits, policy_labels(seg, latent.n_max), reduction="sum")
            aux = aux + self.policy_weight * l_pol
            logs["policy_ce"] = float(l_pol.detach())
            if self.dist is not None:
                per, kept = stepwise_alignment(states, n, batch.extra["anchors"], seg, self.dist)
                aux = aux + self.align_weight * per.sum()
                logs["align"] = float(per.detach().sum())
                # samples given an alignment term; the Trainer divides by the step's samples
                logs["aligned_share"] = float(kept.sum())
        return ce, (batch.labels != -100).sum(), aux, logs
