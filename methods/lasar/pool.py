"""LASAR's CoT pool (PROTOCOL 6; paper Section 2.3, Appendix E.2-E.3): the training examples
that carry a teacher CoT, their segments and their anchors. Stage 2 trains on it and RL draws
its prompts from it. Three artifacts, each reused on its own:

  cot-<key>       (dataset _cache/) teacher CoTs of the pool's examples       teacher.py
  segments-<key>  (dataset _cache/) the CoTs cut into segments                segment.py
  anchors-<key>   (profile _work/)  each segment encoded by the Stage-1 model  anchors.py

The CoTs and the anchors are built by every process of a distributed run together (collective
artifacts: each process computes its share of the batches, the main one writes the files).
"""
import json
import time
from dataclasses import dataclass

import numpy as np

from protocol.dist import is_main_process
from protocol.schema import to_dict

from ..lm.backbone import autocast
from .anchors import encode_segments, load_anchors, save_anchors
from .item_text import category_diversity, item_text_share
from .latent import START
from .objective import latent_task
from .segment import SEGMENTATION_VERSION, complexity_table, segment_cots
from .teacher import cot_artifact, teacher_cots, warn_without_item_text


@dataclass
class Pool:
    """examples: recdata.Examples; task: their LatentTask with anchors; info: Table 8's data,
    counts, the share of examples with item text in their history (`item_text_share`; 0.0 on
    Instruments), an example CoT and the build times; key: the anchors' artifact key (it names
    the Stage-1 model, the teacher, the examples and the segmentation)."""
    examples: object
    task: object
    info: dict
    key: str


def pool_examples(train, k, seed):
    """The training examples given a teacher CoT (Explicit CoT uses the same rule, so the two
    share the CoT artifact): all, or a fixed-seed sample of k."""
    idx = (np.arange(len(train)) if not k or k >= len(train) else
           np.sort(np.random.default_rng(seed + 1).choice(len(train), k, replace=False)))
    return train.subset(idx)


def _segments(ctx, examples, cfg):
    """The pool's CoTs and their segments: two artifacts of the dataset's _cache/.
    -> (segments artifact, build(): (segment lists, CoTs, seconds))."""
    seg = cfg.segmentation
    cot_art = cot_artifact(ctx, examples, cfg.teacher)
    art = ctx.artifact("segments", {"cots": cot_art.key, "segmentation": to_dict(seg),
                                    "rule": SEGMENTATION_VERSION}, shared=True)

    def load():
        t0 = time.perf_counter()
        cots = teacher_cots(ctx, cot_art, examples, cfg.teacher)
        t_cot = time.perf_counter() - t0

        def build(folder):
            t1 = time.perf_counter()
            segments = segment_cots(cots, seg.embedder, seg.threshold, seg.batch_size)
            (folder / "segments.json").write_text(json.dumps(segments))
            return {"seconds": round(time.perf_counter() - t1, 1)}

        def read(path, info):
            segments = json.loads((path / "segments.json").read_text())
            if len(segments) != len(cots):
                raise ValueError(f"{len(segments)} segment lists for {len(cots)} CoTs")
            return segments, info
        segments, info = art.get(build, read)
        return segments, cots, {"teacher": round(t_cot, 1), "segmentation": info["seconds"]}
    return art, load


def build_pool(ctx, cfg, base, tok, codec, stage1_key):
    """The pool for a LasarConfig `cfg`: CoTs, segments, anchors from the Stage-1 model `base`
    (CoTs and segments are read only when the anchors must be built; each segment encoded
    whole, up to `anchor_max_tokens`: the info's `segment_tokens` counts those cut). -> Pool."""
    examples = pool_examples(ctx.split.train, cfg.pool_examples, ctx.seed)
    text_share = item_text_share(examples.histories(), ctx.dataset.items)
    warn_without_item_text(text_share, cfg.teacher)
    seg_art, segments_and_cots = _segments(ctx, examples, cfg)
    art = ctx.artifact("anchors", {"stage1": stage1_key, "segments": seg_art.key,
                                   "max_tokens": cfg.anchor_max_tokens},
                       resumable=True, collective=True)

    def build(folder):
        segments, cots, seconds = segments_and_cots()
        t0 = time.perf_counter()
        with autocast(ctx.device, ctx.config.lm):
            anchors = encode_segments(base, tok, segments, ctx.device, cfg.anchor_max_tokens,
                                      batch_size=64, token_budget=16384)
        if is_main_process():
            save_anchors(anchors, folder / "anchors.pt")
        # segments counted, and cut to their last anchor_max_tokens tokens (share logged)
        return {"segment_tokens": anchors.info,
                "cot_example": cots[0], "segments_example": segments[0],
                "seconds": {**seconds, "anchors": round(time.perf_counter() - t0, 1)}}

    anchors = art.get(build, lambda path, info: load_anchors(path / "anchors.pt"))
    built = art.info()
    counts = anchors.counts().tolist()
    div = [category_diversity(h, ctx.dataset.items) for h in examples.histories()]
    info = {"examples": len(examples), "item_text_share": text_share,
            "segments_total": int(sum(counts)),
            "mean_segments": float(np.mean(counts)),
            "table8": complexity_table(counts, examples.lengths, div, cfg.n_max),
            "raw_count_histogram": {int(v): int(n) for v, n in
                                    zip(*np.unique(counts, return_counts=True))},
            **built}
    task = latent_task(codec, examples, tok.convert_tokens_to_ids(START), anchors, cfg.n_max)
    return Pool(examples, task, info, art.key)
