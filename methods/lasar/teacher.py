"""Teacher chain-of-thought for LASAR's alignment anchors (PROTOCOL section 6; paper Section
2.3 and Appendix E.2). The paper's teacher is GPT-5; here the teacher is pluggable:

  template  (default) a deterministic teacher writing GREAM's structured chain (behavioural
            evidence -> latent preferences -> intent -> recommendation -> denoised history) from
            the item text of the history and of the target. Richer histories (more items, more
            categories, repeated brands) give more sentences.
  import    a JSONL file from any outside model: {"user": USER_ID, "target": ITEM_ID, "cot": str}
            per line. A user never repeats an item (datasets README), so (user, target) names
            one training position.
  local     a local instruct model (a Hugging Face folder, or 'smollm2') writes the chain from a
            GREAM-style prompt; greedy, batched, `max_new_tokens` capped; its batches are
            shared out among the processes of a distributed run.

The CoTs of one dataset, teacher and set of examples are an artifact under
results/<dataset>/_cache/ (cot-<key>/cots.jsonl), built by every process of a distributed run
together (collective; the main one writes the file).
"""
import hashlib
import json
import logging
from collections import Counter
from pathlib import Path

from benchmark.protocol.artifact import digest
from benchmark.protocol.dist import is_main_process
from benchmark.protocol.errors import BenchmarkError
from benchmark.protocol.io import jsonl_text, text_lines
from benchmark.protocol.schema import ConfigKeyError

log = logging.getLogger(__name__)


# --- what the teachers read about an item -------------------------------------------------
def item_category(rec):
    """Leaf category of an item: the last of `categories` (Beauty) or of `attributes` after the
    brand (Sports: [brand, top, ..., leaf]); None when unknown."""
    if rec.get("categories"):
        return rec["categories"][-1]
    attrs = rec.get("attributes") or []
    return attrs[-1] if len(attrs) >= 2 else None


_CATEGORY_NAMES = {}


def _category_names(recs):
    """Attribute names that appear after the first position of some item: categories. Sports
    puts the brand first only where it is known, so a first attribute is a brand only if it is
    never a category elsewhere in the catalog."""
    key = id(recs)
    if key not in _CATEGORY_NAMES:
        _CATEGORY_NAMES[key] = {a for r in recs for a in (r.get("attributes") or [])[1:]}
    return _CATEGORY_NAMES[key]


def item_brand(rec, recs=()):
    if rec.get("brand"):
        return rec["brand"]
    attrs = rec.get("attributes") or []
    if len(attrs) >= 2 and attrs[0] not in _category_names(recs):
        return attrs[0]
    return None


def item_name(rec):
    """A short name: title, else keywords, else the leaf category."""
    name = rec.get("title") or rec.get("keywords") or item_category(rec) or "an item"
    return " ".join(name.split()[:8])


def category_diversity(items, recs):
    """Distinct leaf categories in a history (Table 8's 'Cat. Div.')."""
    return len({item_category(recs[i]) for i in items} - {None})


# --- template teacher ----------------------------------------------------------------------
def template_cot(history, target, recs, max_groups=6):
    """GREAM's five-stage chain as plain sentences, from item text only. Deterministic."""
    hist = [recs[i] for i in history]
    cats = [item_category(r) or "general gear" for r in hist]
    by_cat = {}
    for r, c in zip(hist, cats):
        by_cat.setdefault(c, []).append(item_name(r))
    brands = Counter(b for b in (item_brand(r, recs) for r in hist) if b)
    tgt = recs[target]
    tcat = item_category(tgt) or "general gear"
    lines = [f"Step 1, behavioral evidence: the user has bought {len(hist)} items across "
             f"{len(by_cat)} categories."]
    for c, names in list(by_cat.items())[:max_groups]:
        lines.append(f"In {c}, the user chose {'; '.join(names[:3])}.")
    for b, k in brands.most_common(2):
        if k > 1:
            lines.append(f"The brand {b} appears {k} times, a sign of brand loyalty.")
    top, k = Counter(cats).most_common(1)[0]
    lines += [f"Step 2, latent preferences: the dominant interest is {top}, with {k} of "
              f"{len(hist)} purchases."]
    lines.append(f"Interests are broad, spanning {len(by_cat)} different needs."
                 if len(by_cat) >= 3 else "Interests are focused on a few related needs.")
    lines += [f"Step 3, intent: the latest purchase, {item_name(hist[-1])}, shows the current "
              "focus.",
              f"The next need is most likely in {tcat}."]
    if tcat in by_cat:
        lines.append(f"This continues the earlier interest in {tcat}.")
    else:
        lines.append(f"This opens a new need next to {cats[-1]}.")
    lines += [f"Step 4, recommendation: recommend {item_name(tgt)}"
              + (f" by {item_brand(tgt, recs)}." if item_brand(tgt, recs) else ".")]
    if len(hist) >= 6:
        keep = [item_name(r) for r, c in zip(hist, cats) if c == tcat][-3:]
        if keep:
            lines += [f"Step 5, denoised history: the relevant items are {'; '.join(keep)}."]
    return "\n".join(lines)


# --- local teacher -------------------------------------------------------------------------
# GREAM's chain as the paper's teacher writes it (Appendix E.2: three headed steps, then the
# recommendation), asked of an instruct model from the item text of the history and the target
GREAM_PROMPT = ("A user bought these items, oldest first:\n{history}\n"
                "The next item the user bought:\n{target}\n"
                "Explain why, in exactly this structure, one short paragraph each:\n"
                "Step 1: Extraction of Behavioral Evidence (product types, brands, needs in the "
                "history)\n"
                "Step 2: Modeling of Latent Preferences\n"
                "Step 3: Inference of User Intent and Goal Formulation\n"
                "Recommendation: why the next item fits.")


def item_line(rec, recs=()):
    """One item as the local teacher reads it: its name, leaf category and brand."""
    parts = [item_name(rec)]
    cat, brand = item_category(rec), item_brand(rec, recs)
    if cat:
        parts.append(f"category: {cat}")
    if brand:
        parts.append(f"brand: {brand}")
    return "- " + "; ".join(parts)


def teacher_prompt(history, target, recs):
    """The local teacher's request for one example (before its chat template)."""
    return GREAM_PROMPT.format(history="\n".join(item_line(recs[i], recs) for i in history),
                               target=item_line(recs[target], recs))


def check_teacher(cfg, key):
    """Before any work: the teacher `cfg` (section `key`) names what it reads."""
    cfg = cfg.resolved()
    if cfg.kind == "local" and not cfg.local_model:
        raise ConfigKeyError(f"{key}.local_model", f"'{key}.local_model' is null; "
                             f"{key}.kind 'local' needs a local instruct-model folder or "
                             "'smollm2'")
    if cfg.kind == "import" and not (cfg.import_path and Path(cfg.import_path).is_file()):
        raise ConfigKeyError(f"{key}.import_path", f"'{key}.import_path' = {cfg.import_path!r}: "
                             f"no such file; {key}.kind 'import' reads a JSONL file of "
                             '{"user", "target", "cot"} lines')
    if cfg.kind == "local":
        from ..lm.backbone import check_model_source
        check_model_source(cfg.local_model, f"{key}.local_model")


def local_cots(examples, recs, cfg, device, cache_dir):
    """CoTs from a local instruct model, greedy, batched (KV-cached `generate`), in the
    examples' order; the batches are shared out among the processes of a distributed run and
    every process gets every CoT (methods/lm/decode.py sharded_rows)."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from ..lm.backbone import smollm2_folder
    from ..lm.decode import sharded_rows
    path = cfg.local_model
    if path == "smollm2":                  # a folder is checked before any work: check_teacher
        path = smollm2_folder(cache_dir)
    tok = AutoTokenizer.from_pretrained(path, padding_side="left")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(path).to(device).eval()
    texts = []
    for h, t in zip(examples.histories(), examples.targets):
        msg = teacher_prompt(h, t, recs)
        if tok.chat_template:              # an instruct model's own format (the teacher only;
                                           # the recommender's prompt never gets one)
            msg = tok.apply_chat_template([{"role": "user", "content": msg}], tokenize=False,
                                          add_generation_prompt=True)
        texts.append(msg)
    bs = cfg.local_batch

    def step(number, idx):
        enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True).to(device)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=cfg.local_max_new_tokens,
                                 do_sample=False, num_beams=1, top_k=None, top_p=None,
                                 temperature=None, pad_token_id=tok.pad_token_id)
        out = tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        return {"cot": np.array([o.strip() or "No reasoning." for o in out], dtype=object)}
    batches = [np.arange(i, min(i + bs, len(texts))) for i in range(0, len(texts), bs)]
    return sharded_rows(batches, step, len(texts), device)["cot"].tolist()


# --- import teacher ------------------------------------------------------------------------
def imported_cots(examples, dataset, path):
    """The CoTs of `examples` from the JSONL file `path` (its existence is checked before any
    work: check_teacher)."""
    path = Path(path)
    table = {}
    for k, line in text_lines(path):
        try:
            row = json.loads(line)
            table[(str(row["user"]), str(row["target"]))] = str(row["cot"])
        except (ValueError, KeyError, TypeError):
            raise BenchmarkError(f"{path}:{k}: expected a JSON object with keys user, "
                                 "target, cot") from None
    out = []
    for u, t in zip(examples.users, examples.targets):
        key = (dataset.user_ids[u], dataset.item_ids[t])
        if key not in table:
            raise BenchmarkError(f"{path}: no CoT for user {key[0]}, target {key[1]}; the file "
                                 "must cover every LASAR training example")
        out.append(table[key])
    return out


# --- entry point ---------------------------------------------------------------------------
def examples_id(examples):
    """A short identity of a set of training examples: who, which target, which history (the
    teachers read the history, whose length is a setting)."""
    return digest([examples.users.tolist(), examples.targets.tolist(),
                   [h.tolist() for h in examples.histories()]])


def teacher_inputs(cfg):
    """The settings the teacher that runs reads, as artifact-key input (`auto` as what it
    resolves to; another kind's settings leave it alone), with what they point at: an
    imported file's content, a local model folder resolved."""
    cfg = cfg.resolved()
    if cfg.kind == "template":
        return {"kind": "template"}
    if cfg.kind == "import":
        path = Path(cfg.import_path)
        return {"kind": "import", "import_path": cfg.import_path, "import_sha256":
                hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None}
    model = cfg.local_model if cfg.local_model == "smollm2" else \
        str(Path(cfg.local_model).expanduser().resolve())
    return {"kind": "local", "local_model": model, "local_batch": cfg.local_batch,
            "local_max_new_tokens": cfg.local_max_new_tokens,
            "prompt": digest([GREAM_PROMPT, item_line.__doc__])}


def cot_artifact(ctx, examples, cfg):
    """The artifact of the CoTs of `examples` by the teacher `cfg` (a TeacherConfig), built by
    every process of a distributed run together (the local teacher's batches are shared out)."""
    return ctx.artifact("cot", {"teacher": teacher_inputs(cfg), "data": ctx.dataset.fingerprint,
                                "examples": examples_id(examples)}, shared=True,
                        resumable=True, collective=True)


def teacher_cots(ctx, art, examples, cfg):
    """One CoT text per example by the teacher `cfg`, as the artifact `art`
    (`cot_artifact(ctx, examples, cfg)`; called by every process of a distributed run, the
    main one writes cots.jsonl)."""
    ds = ctx.dataset
    cfg = cfg.resolved()

    def build(folder):
        recs = ds.items
        if cfg.kind == "template":
            cots = [template_cot(h, t, recs)
                    for h, t in zip(examples.histories(), examples.targets)]
        elif cfg.kind == "import":
            cots = imported_cots(examples, ds, cfg.import_path)
        else:
            from ..lm.backbone import autocast
            with autocast(ctx.device, ctx.config.lm):
                cots = local_cots(examples, recs, cfg, ctx.device, ctx.cache_dir)
        if is_main_process():
            (folder / "cots.jsonl").write_text(jsonl_text(
                {"user": ds.user_ids[u], "target": ds.item_ids[t], "cot": c}
                for u, t, c in zip(examples.users, examples.targets, cots)))
        log.info("teacher '%s': %d CoTs", cfg.kind, len(cots))
        return {"cots": len(cots), "teacher": cfg.kind,
                "local_model": cfg.local_model if cfg.kind == "local" else None}

    def load(path, info):
        with open(path / "cots.jsonl") as f:
            cots = [json.loads(line)["cot"] for line in f]
        if len(cots) != info["cots"]:
            raise ValueError(f"{len(cots)} CoTs, done.json says {info['cots']}")
        return cots
    return art.get(build, load)
