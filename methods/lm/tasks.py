"""SFT tasks as token ids (PROTOCOL sections 3 and 5).

Every prompt of a task starts with the same text (the task's *head*: the preamble, the
instruction and the start of the input). A task is encoded once as (head ids, per-example
suffix ids, per-example answer ids). Batches hold one task each, so the head is run once per
batch and its KV cache shared by every row (`methods.lm.forward`): about half the prompt tokens
of a sequential-recommendation example are head tokens.

Pieces are tokenized separately and concatenated. SID tokens are added tokens, at which the
tokenizer splits the text anyway, so the result equals tokenizing the whole prompt text
(tests/test_lm_core.py checks it).

Tasks:
  seqrec   the shared prompt (Appendix E.2): history SIDs -> target SID            (all)
  item2sid item text -> SID                                                  (MiniOneRec, LC-Rec)
  sid2item SID -> item text                                                  (MiniOneRec, LC-Rec)
  fusion   history SIDs -> next item's text                                          (LC-Rec)
"""
from dataclasses import dataclass

import numpy as np

from protocol.prompt import PREAMBLE, rec_prompt

TASKS = ("seqrec", "item2sid", "sid2item", "fusion")
_SLOT = "\x00"


def _alpaca(instruction, user_input):
    return f"{PREAMBLE}\n### Instruction:\n{instruction}\n### User Input:\n{user_input}\n### Response:\n"


ITEM2SID = "Which item has the following description? Answer with its semantic ID."
SID2ITEM = "What is the description of the item with the following semantic ID?"
FUSION = "Can you describe the next item that the user may expect?"


def template_texts():
    """Every fixed text of every task's prompt (the tokenizer is trained on them)."""
    return [rec_prompt(["x", "y"]), _alpaca(ITEM2SID, "x"), _alpaca(SID2ITEM, "x"),
            _alpaca(FUSION, "The user has interacted with items x, y in chronological order.")]


@dataclass
class Encoded:
    """One task's examples: head (H,) shared ids; suffixes/answers: one id list per example."""
    task: str
    head: list
    suffixes: list
    answers: list

    def __len__(self):
        return len(self.suffixes)


class Codec:
    """Turns histories, items and texts into token ids for one tokenizer and SID table."""

    def __init__(self, tokenizer, sid_table, item_texts, max_text_tokens=32):
        self.tok = tokenizer
        self.eos = tokenizer.eos_token_id
        ids = tokenizer.convert_tokens_to_ids(
            [t for i in range(len(sid_table.codes)) for t in sid_table.tokens(i)])
        self.sid_ids = np.asarray(ids, dtype=np.int64).reshape(len(sid_table.codes), -1)
        self.item_texts = list(item_texts)
        self.max_text_tokens = max_text_tokens
        self._text_cache = None
        self.sep = self.enc(", ")
        rec_head, rec_tail = rec_prompt([_SLOT]).split(_SLOT)
        self.rec_head, self.rec_tail = self.enc(rec_head), self.enc(rec_tail)
        fus_head, fus_tail = _alpaca(FUSION, f"The user has interacted with items {_SLOT} in "
                                             "chronological order.").split(_SLOT)
        self.fus_head, self.fus_tail = self.enc(fus_head), self.enc(fus_tail)

    def enc(self, text):
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def item_text_ids(self, i):
        if self._text_cache is None:
            enc = self.tok(self.item_texts, add_special_tokens=False)["input_ids"]
            self._text_cache = [e[:self.max_text_tokens] for e in enc]
        return self._text_cache[i]

    def history_ids(self, items):
        out = []
        for k, i in enumerate(items):
            if k:
                out.extend(self.sep)
            out.extend(self.sid_ids[i].tolist())
        return out

    def answer_sid(self, i):
        return self.sid_ids[i].tolist() + [self.eos]

    # --- tasks -------------------------------------------------------------------------
    def seqrec(self, examples, with_answers=True):
        suffixes = [self.history_ids(h) + self.rec_tail for h in examples.histories()]
        answers = [self.answer_sid(t) for t in examples.targets] if with_answers else None
        return Encoded("seqrec", self.rec_head, suffixes, answers)

    def item2sid(self, items):
        head, tail = _alpaca(ITEM2SID, _SLOT).split(_SLOT)
        h, t = self.enc(head), self.enc(tail)
        return Encoded("item2sid", h, [self.item_text_ids(i) + t for i in items],
                       [self.answer_sid(i) for i in items])

    def sid2item(self, items):
        head, tail = _alpaca(SID2ITEM, _SLOT).split(_SLOT)
        h, t = self.enc(head), self.enc(tail)
        return Encoded("sid2item", h, [self.sid_ids[i].tolist() + t for i in items],
                       [self.item_text_ids(i) + [self.eos] for i in items])

    def fusion(self, examples):
        suffixes = [self.history_ids(h) + self.fus_tail for h in examples.histories()]
        return Encoded("fusion", self.fus_head, suffixes,
                       [self.item_text_ids(t) + [self.eos] for t in examples.targets])


def build_tasks(codec, split, tasks, n_items, max_align_items=None, seed=0):
    """The training examples of every requested task. -> list of Encoded. The item tasks
    cover the whole catalog, or a fixed-seed subsample of `max_align_items` items (smoke)."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown SFT task(s) {unknown}; choose from {list(TASKS)}")
    items = np.arange(n_items)
    if max_align_items and max_align_items < n_items:
        items = np.sort(np.random.default_rng(seed).choice(n_items, max_align_items, False))
    make = {"seqrec": lambda: codec.seqrec(split.train),
            "item2sid": lambda: codec.item2sid(items),
            "sid2item": lambda: codec.sid2item(items),
            "fusion": lambda: codec.fusion(split.train)}
    return [make[t]() for t in tasks]
