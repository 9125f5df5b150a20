"""LASAR's ablation and sweep tables from results/<ds>/<profile>/lasar/studies.json (written by
methods/lasar/studies.py), in LaTeX and Markdown:

  alignment   Table 2 (Beauty) / Table 9 (Sports, Instruments): Pure SFT vs latent + none/KL/
              cosine/MSE alignment, after Stage 2
  rl          Table 3: MiniOneRec, RL with latent reasoning, + terminal KL, + REINFORCE, mean N
  force_n     Figure 4a's data: Force-N against the Policy Head's adaptive N
  per_n       Figure 5b's data: metrics of the test users the Policy Head gave each N
  n_dist      Figure 4b's data: N distribution after SFT and after RL
  table8      segment count vs history length and category diversity
  lambda      the REINFORCE step-penalty sweep (paper Table 7's range): mean N, N@10, HR@10
              with 95% bootstrap intervals over the study users

Ablation rows are on the studies' fixed subsample of test users; MiniOneRec's row of Table 3 is
recomputed from its predictions.jsonl on exactly those users.
"""
from . import paper
from .fmt import cell, rank_marks, write_table
from .study_data import (INTERVAL_RESAMPLES, NO_ITEM_TEXT, adaptive_rows, lambda_sweep,
                         no_item_text)

COLS = ("NDCG@5", "NDCG@10", "HR@5", "HR@10")
HEAD = ["N@5", "N@10", "HR@5", "HR@10"]


def _metric_rows(rows, names, labels, style, extra=None):
    marks = {c: rank_marks([rows[n].get(c) if n in rows else None for n in names]) for c in COLS}
    out = []
    for i, (n, lab) in enumerate(zip(names, labels)):
        r = rows.get(n, {})
        line = [lab] + [cell(r.get(c), marks[c][i], style) for c in COLS]
        if extra:
            line += extra(n, r)
        out.append(line)
    return out


def _base(results):
    """The notes' first words: the dataset, profile and the studies' fixed users."""
    st = results.studies
    return (f"{results.dataset}, {results.profile} profile, {st['eval_users']} fixed test users "
            f"(of {st['all_test_users']})")


_ALIGN = {"pure_sft": "Pure SFT (MiniOneRec SFT)", "sft_align_none": "+ Latent (w/o align.)",
          "sft_align_kl": "+ KL alignment", "sft_align_cosine": "+ Cosine alignment",
          "sft_align_mse": "+ MSE alignment"}
# the main alignment trained the other way round (studies.detached_stage2): its row after the
# main alignment's
ALIGN_LABELS = {**_ALIGN, **{f"sft_align_{a}_{way}": f"{_ALIGN[f'sft_align_{a}']} ({what})"
                             for a in ("none", "kl", "cosine", "mse")
                             for way, what in (("detached", "Policy Head input detached"),
                                               ("joint", "joint loss through h_0"))}}


def write_alignment(results):
    """Table 2 (Beauty) / Table 9 (Sports, Instruments): the alignment ablation after Stage 2."""
    st = results.studies
    if not st:
        return []
    ds, prof, rows = results.dataset, results.profile, st["rows"]
    names = ["pure_sft"] + [f"sft_align_{a}{way}" for a in ("none", "kl", "cosine", "mse")
                            for way in ("", "_detached", "_joint")
                            if f"sft_align_{a}{way}" in rows]
    stem = "table2_alignment" if ds == "beauty" else "table9_alignment"
    return write_table(results.root, stem, ["Model"] + HEAD + ["Mean N"],
                       lambda s: _metric_rows(rows, names, [ALIGN_LABELS[n] for n in names], s,
                                              lambda n, r: [_mean_n(r)]),
                       f"SFT-phase alignment ablation, {ds} ({prof}).",
                       f"Alignment ablation after Stage 2 (paper Table "
                       f"{2 if ds == 'beauty' else 9})",
                       [_base(results) + "; Stage 2 models, no RL."] + _item_text_notes(st))


RL_LABELS = {"minionerec": "MiniOneRec (SFT + GRPO)", "rl_latent_only": "RL w/ latent reasoning",
             "rl_terminal_kl": "+ Terminal KL", "rl_full": "+ REINFORCE (LASAR)"}


def write_rl_ablation(results):
    """Table 3: MiniOneRec's row recomputed on the studies' users, then the RL rows."""
    st = results.studies
    rows = st.get("rows") or {}
    rl_names = [n for n in ("rl_latent_only", "rl_terminal_kl", "rl_full") if n in rows]
    if not rl_names:
        return []
    ds, prof = results.dataset, results.profile
    table_rows = dict(rows)
    mini = results.methods.get("minionerec")
    if mini is not None and mini.has_predictions and st.get("eval_user_ids"):
        table_rows["minionerec"] = mini.subset_metrics(st["eval_user_ids"])
    names = (["minionerec"] if "minionerec" in table_rows else []) + rl_names
    return write_table(results.root, "table3_rl_ablation", ["Model"] + HEAD + ["Mean N"],
                       lambda s: _metric_rows(table_rows, names, [RL_LABELS[n] for n in names],
                                              s, lambda n, r: [_mean_n(r)]),
                       f"RL-phase ablation, {ds} ({prof}).", "RL ablation (paper Table 3)",
                       [_base(results)])


def write_force_n(results):
    """Figure 4a's data: Force-N against the Policy Head's adaptive N."""
    st = results.studies
    rows = st.get("rows") or {}
    fn = sorted((int(n.split("_")[1]), n) for n in rows if n.startswith("force_"))
    adaptive = adaptive_rows(st)
    if not (fn and adaptive):
        return []
    ds, prof = results.dataset, results.profile
    names = [n for _, n in fn] + [n for n, _ in adaptive]
    return write_table(results.root, "force_n", ["Setting"] + HEAD + ["Mean N"],
                       lambda s: _metric_rows(rows, names, [f"Force N = {k}" for k, _ in fn]
                                              + [lab for _, lab in adaptive], s,
                                              lambda n, r: [_mean_n(r)]),
                       f"Force-N vs adaptive N, {ds} ({prof}).",
                       "Force-N sweep (Figure 4a data)", [_base(results)])


def write_per_n(results):
    """Figure 5b's data: the metrics of the test users the Policy Head gave each N."""
    st = results.studies
    per = st.get("per_n_all_users") or {}
    if not per:
        return []
    ds, prof = results.dataset, results.profile
    ks = sorted(per, key=int)
    return write_table(results.root, "per_n", ["N", "users", "N@10", "HR@10"],
                       lambda s: [[k, str(per[k]["n_users"]), f"{per[k]['NDCG@10']:.4f}",
                                   f"{per[k]['HR@10']:.4f}"] for k in ks],
                       f"Metrics per Policy-Head N, {ds} ({prof}).",
                       "Per-N metrics (Figure 5b data)",
                       [f"{ds}, {prof} profile, all {st['all_test_users']} test users, final "
                        "model."])


def write_n_distribution(results):
    """Figure 4b's data: the N distribution after SFT and after RL."""
    st = results.studies
    sft, rl = st.get("n_dist_after_sft"), st.get("n_dist_final_subset")
    if not (sft and rl):
        return []
    ds, prof = results.dataset, results.profile
    tot_s, tot_r = sum(sft["counts"]) or 1, sum(rl["counts"]) or 1
    return write_table(results.root, "n_distribution", ["N", "after SFT", "after RL"],
                       lambda s: [[str(k + 1), f"{sft['counts'][k] / tot_s:.3f}",
                                   f"{rl['counts'][k] / tot_r:.3f}"]
                                  for k in range(len(sft["counts"]))]
                       + [["mean", f"{sft['mean']:.2f}", f"{rl['mean']:.2f}"]],
                       f"N distribution after SFT and after RL, {ds} ({prof}).",
                       "N distribution (Figure 4b data)", [_base(results)])


def write_table8(results):
    """Table 8: the teacher CoTs' segment count against history length and category
    diversity, beside the paper's Sports rows."""
    st = results.studies
    t8 = st.get("table8")
    if not t8:
        return []
    ds, prof = results.dataset, results.profile
    header, _, note = table8_rows(t8, "md")
    return write_table(results.root, "table8_segments", header,
                       lambda s: table8_rows(t8, s)[1],
                       f"Teacher CoT segment count vs sample complexity, {ds} ({prof}).",
                       "Segment count vs complexity (paper Table 8)",
                       [f"{ds}, {prof} profile: the LASAR CoT pool; counts clipped to 1..N_max "
                        "(the Policy Head's SFT labels). " + note] + _item_text_notes(st))


def _item_text_notes(st):
    """What the teacher saw of the items (studies.json["teacher"]), for Tables 8 and 9."""
    t = st.get("teacher") or {}
    if no_item_text(st):
        return [f"LASAR's {NO_ITEM_TEXT} (teacher {t.get('kind', '?')}: none of the CoT pool's "
                "examples has item text for its history items)."]
    share = t.get("item_text_share")
    if isinstance(share, (int, float)):
        return [f"Teacher {t.get('kind', '?')}: {100 * share:.1f}% of the CoT pool's examples "
                "have item text for their history items."]
    return []


def _with_ci(v, ci, digits=4):
    if v is None:
        return "–"
    s = f"{v:.{digits}f}"
    return s + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")


def write_lambda(results):
    """tables/table_lambda.{md,tex}: the step-penalty sweep, or nothing without one."""
    sweep = lambda_sweep(results.studies)
    if not sweep:
        return []
    ds, prof = results.dataset, results.profile

    def fmt(style):
        return [[f"{r['step_penalty']:g}" + (" (configured)" if r["configured"] else ""),
                 r["row"].replace("_", r"\_") if style == "latex" else r["row"],
                 _with_ci(r["mean_n"], r["mean_n_ci"], 2),
                 _with_ci(r["NDCG@10"], r["NDCG@10_ci"]), _with_ci(r["HR@10"], r["HR@10_ci"])]
                for r in sweep]
    notes = [_base(results) + f"; one RL run per step penalty (lambda, Eq. 6). [lo, hi]: 95% percentile "
             f"bootstrap interval over the study users ({INTERVAL_RESAMPLES} resamples; mean N's "
             "from the N counts). Paper Table 7: lambda 1e-4, 5e-4 or 1e-3; its main runs use "
             "5e-4."]
    return write_table(results.root, "table_lambda", ["Step penalty", "Row", "Mean N", "N@10", "HR@10"],
                       fmt, f"REINFORCE step penalty sweep, {ds} ({prof}).",
                       "Step-penalty (λ) sweep", notes)


def table8_rows(t8, style):
    """Table 8 with the paper's Sports rows beside ours (paper_numbers.yaml): per segment
    count N (ours and the paper's), the share of samples (the label histogram), mean history
    length and category diversity; a count the paper does not print is '–', one our pool
    lacks has share 0. `style`: "latex" or "md". -> (header, rows, note with both mean
    labels)."""
    ours = {r["segments"]: r for r in t8}
    theirs = {int(k.split("_")[1]): v for k, v in
              (paper.load().get("table8", {}).get("sports") or {}).items()}

    def num(r, key, fmt):
        if r and r.get(key) is not None:
            return fmt.format(r[key]).replace("%", r"\%" if style == "latex" else "%")
        return "--" if style == "latex" else "–"
    rows = [[str(k), num(ours.get(k, {"share": 0.0}), "share", "{:.1%}"),
             num(theirs.get(k), "share", "{:.1%}"),
             num(ours.get(k), "hist_len", "{:.1f}"), num(theirs.get(k), "hist_len", "{:.1f}"),
             num(ours.get(k), "cat_div", "{:.1f}"), num(theirs.get(k), "cat_div", "{:.1f}")]
            for k in sorted(set(ours) | set(theirs))]
    mean = sum(k * r["share"] for k, r in ours.items())
    note = f"Mean label {mean:.2f}."
    if theirs:
        note += (" Paper: Sports, GPT-5 CoTs segmented with bge-small-en-v1.5; its shares "
                 f"give a mean of {sum(k * v['share'] for k, v in theirs.items()):.2f}.")
    return (["Segments", "Prop.", "Paper Prop. (Sports)", "Hist. Len.", "Paper Hist. Len.",
             "Cat. Div.", "Paper Cat. Div."], rows, note)


def _mean_n(r):
    d = r.get("n_dist") if r else None
    return f"{d['mean']:.2f}" if d and d.get("mean") is not None else "–"
