"""Teacher chain-of-thought for LASAR's alignment anchors (PROTOCOL section 6; paper Section
2.3 and Appendix E.2). The paper's teacher is GPT-5; here the teacher is pluggable:

  template  (default) a deterministic teacher writing GREAM's chain as Appendix E.2 shows the
            paper's teacher writing it: "Step 1: Extraction of Behavioral Evidence", "Step 2:
            Modeling of Latent Preferences", "Step 3: Inference of User Intent and Goal
            Formulation" (each a heading line and a paragraph), for longer histories with noise
            a denoised history, then "Recommendation:", from the item text (titles or keywords,
            brands, categories) of the history and of the target. Richer histories (more
            items, product types, areas, repeated brands) give more sentences.
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
import html
import json
import logging
from collections import Counter
from pathlib import Path

from protocol.artifact import digest
from protocol.dist import is_main_process
from protocol.errors import BenchmarkError
from protocol.io import jsonl_text, text_lines
from protocol.schema import ConfigKeyError

from .item_text import item_area, item_brand, item_category, item_name

log = logging.getLogger(__name__)


# --- template teacher ----------------------------------------------------------------------
# GREAM's chain as Appendix E.2 shows the paper's teacher (GPT-5) writing it: three headed
# steps, each a heading line and a short paragraph built from item text, then the
# recommendation. The headings are the ones the local teacher is asked for (GREAM_PROMPT).
# Segmented (segment.py), its chains give Sports labels of 3-5 growing with history length and
# category diversity, more spread than Table 8's: methods/lasar/README.md says how and why.
# TEMPLATE_VERSION keys the template's CoTs (teacher_inputs): change it with the text.
TEMPLATE_VERSION = 2
STEP_HEADINGS = ("Step 1: Extraction of Behavioral Evidence",
                 "Step 2: Modeling of Latent Preferences",
                 "Step 3: Inference of User Intent and Goal Formulation")
DENOISE_MIN_HISTORY = 5


def needs_denoised_history(related):
    """GREAM's fifth stage, the denoised history, for a history whose items are `related` (a
    bool each: shares the target's product type, area or brand) or not. GREAM's own data
    builder writes a history rewrite after every reasoning, before the answer; the paper's
    example chain (Appendix E.2: four items on one concern) has none; Table 8's samples with
    more segments have longer, more diverse histories. So the template writes the part only
    where a history is longer than that example (DENOISE_MIN_HISTORY = 5+ items) and has both
    noise to drop and items to keep."""
    return len(related) >= DENOISE_MIN_HISTORY and any(related) and not all(related)


def _list(names, k=3):
    """'a, b and c'; past k: 'a, b, c and 2 more'."""
    names = list(names)
    if len(names) > k:
        return f"{', '.join(names[:k])} and {len(names) - k} more"
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def template_cot(history, target, recs, max_types=6):
    """GREAM's chain (Appendix E.2) from the item text of the history and the target:
    Step 1 behavioural evidence (product types with their items and areas; brands), Step 2
    latent preferences (a repeated product type, a focus or spread over areas, brand loyalty),
    Step 3 intent and goal (the latest purchases, the next product type), for longer histories
    with noise the denoised history, then the recommendation, last, so that RL's terminal
    anchor (the last segment, Section 2.4) is the recommendation's. A sentence is written only
    where the history supports it (no brand loyalty from one purchase), so richer histories get
    more (Table 8: their chains have more segments). Deterministic."""
    def text(s):                       # '&amp;' in Sports' brands; a title cut mid-phrase
        return html.unescape(s).rstrip(" ,;:(") if s else s
    hist = [recs[i] for i in history]
    n = len(hist)
    names = [text(item_name(r)) for r in hist]
    cats = [text(item_category(r)) or "general gear" for r in hist]
    areas = [text(item_area(r, recs)) for r in hist]
    brands = [text(item_brand(r, recs)) for r in hist]
    tgt = recs[target]
    tname, tcat = text(item_name(tgt)), text(item_category(tgt)) or "general gear"
    tarea, tbrand = text(item_area(tgt, recs)), text(item_brand(tgt, recs))
    by_cat, cats_of_brand = {}, {}
    for name, c, b in zip(names, cats, brands):
        by_cat.setdefault(c, []).append(name)
        if b:
            cats_of_brand.setdefault(b, []).append(c)
    area_count = Counter(a for a in areas if a)
    brand_count = Counter(b for b in brands if b)

    # Step 1: what the history shows (E.2: product types, key concerns, preferences)
    types = list(by_cat.items())
    step1 = ["Product types: " + "; ".join(f"{c} ({_list(v, 2)})" for c, v in types[:max_types])
             + (f"; and {len(types) - max_types} more types" if len(types) > max_types else "")
             + (f", in {_list(area_count)}." if area_count else ".")]
    if len(brand_count) > 1 or sum(brand_count.values()) > 1:
        step1.append("Brands: " + "; ".join(
            f"{b} for {_list(dict.fromkeys(cats_of_brand[b]), 2)}"
            for b, _ in brand_count.most_common(3)) + ".")
    # Step 2: what the user prefers
    top, k = Counter(cats).most_common(1)[0]
    if n == 1:
        step2 = [f"A first interest in {top}."]
    elif k > 1:
        step2 = [f"A repeated interest in {top}, {k} of {n} purchases."]
    else:
        step2 = [f"Varied interests: {len(by_cat)} product types in {n} purchases."]
    if n >= 3 and area_count:
        a, ka = area_count.most_common(1)[0]
        step2.append(f"A focus on {a}." if 2 * ka > n else
                     f"Needs spread over {_list(area_count)}.")
    if brand_count and brand_count.most_common(1)[0][1] > 1:
        b, kb = brand_count.most_common(1)[0]
        step2.append(f"Loyalty to {b} for {_list(dict.fromkeys(cats_of_brand[b]), 2)}.")
    # Step 3: where the user is going (E.2: "With ... in place, the next logical addition is")
    step3 = [f"With {_list(dict.fromkeys(names[-2:]))} in place, the next logical addition is "
             f"{tcat}" + (f" in {tarea}." if tarea else "."),
             f"This continues the interest in {tcat}." if tcat in by_cat else
             f"This adds a new product type next to {cats[-1]}."]
    lines = [STEP_HEADINGS[0], " ".join(step1), STEP_HEADINGS[1], " ".join(step2),
             STEP_HEADINGS[2], " ".join(step3)]
    # GREAM's denoised history (needs_denoised_history): the items that bear on the intent
    related = [c == tcat or (a is not None and a == tarea) or (b is not None and b == tbrand)
               for c, a, b in zip(cats, areas, brands)]
    if needs_denoised_history(related):
        keep = [nm for nm, m in zip(names, related) if m]
        lines.append(f"Denoised history: {'; '.join(keep[-4:])}; {n - sum(related)} unrelated "
                     "purchases set aside.")
    lines.append(f"Recommendation: {tname}" + (f" by {tbrand}" if tbrand else "")
                 + f", a {tcat} item.")
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
def warn_without_item_text(share, cfg):
    """One warning line when no example of a pool has item text (`item_text_share` 0.0, e.g.
    Instruments, which ships published SIDs and no titles) and the teacher that runs reads item
    text (template, local): every CoT then follows one pattern ("general gear (an item, an
    item)") and the anchors carry no item information. -> whether it warned."""
    kind = cfg.resolved().kind
    if share > 0 or kind == "import":
        return False
    log.warning("teacher '%s': no history item of the CoT pool has item text (title, brand, "
                "categories, keywords), so every CoT follows one pattern and the anchors carry "
                "no item information; with the raw Amazon 2018 metadata, `python -m benchmark "
                "data convert --reviews R --meta M --to DIR/NAME` builds a dataset with item "
                "text for the `template` or `local` teacher, or the `import` teacher reads CoTs "
                "written from it (items.jsonl keeps each item's asin): methods/lasar/README.md",
                kind)
    return True



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
        return {"kind": "template", "version": TEMPLATE_VERSION}
    if cfg.kind == "import":
        path = Path(cfg.import_path)
        return {"kind": "import", "import_path": cfg.import_path, "import_sha256":
                hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None}
    model = (cfg.local_model if cfg.local_model == "smollm2" else
             str(Path(cfg.local_model).expanduser().resolve()))
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
