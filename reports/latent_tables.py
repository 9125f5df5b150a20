"""Latent reasoning side by side (not in the paper): LASAR, LatentR3 and Explicit CoT, and
LatentR3's own study, from results/ only.

  tables/latent_comparison   per method: CoT data needed, latent steps, ms per user (bench
                             cot's same-users timing), N@10 and HR@10 on all test users (Table
                             1), and LASAR against LatentR3: the paired difference with its 95%
                             bootstrap interval and the one-sided p-value (LASAR > LatentR3)
  tables/latentr3_study      latentr3/studies.json: RL on or off, 1 vs 2 thought tokens, on the
                             studies' fixed test users, each row against the main one
"""
import numpy as np

from protocol.stats import paired_difference

from .fmt import write_table

METHODS = (("lasar", "LASAR", "yes (teacher CoTs, aligned)"),
           ("latentr3", "LatentR3", "no"),
           ("cot_gream", "Explicit CoT (GREAM)", "yes (teacher CoTs, generated)"))


def lasar_vs_latentr3(results):
    """{metric: paired_difference summary} of LASAR - LatentR3 on N@10 and HR@10 over all test
    users, or None without both."""
    found = results.methods
    if not {"lasar", "latentr3"} <= set(found):
        return None
    ua, a = found["lasar"].per_user((10,))
    ub, b = found["latentr3"].per_user((10,))
    if ua != ub:
        raise ValueError(f"{found['latentr3'].folder}: test users differ from LASAR's; rerun "
                         "on the same split")
    return paired_difference({k: (a[k], b[k]) for k in ("NDCG@10", "HR@10")}, *results.boot)


def write_latent_comparison(results):
    found = results.methods
    if "latentr3" not in found:
        return []
    ds, prof = results.dataset, results.profile
    bench = results.bench_cot or {}
    ms = bench.get("ms_per_user", {})
    diff = lasar_vs_latentr3(results)
    rows = []
    for m, label, cot in METHODS:
        if m not in found:
            rows.append([label, cot, "–", "–", "not run", "not run", "–"])
            continue
        met, man = found[m].metrics, found[m].manifest
        fit = man.get("fit_info") or {}
        if m == "lasar":
            steps = f"{bench['mean_latent_steps']:.2f} (adaptive)" if bench else "adaptive"
            t = ms.get("lasar")
        elif m == "latentr3":
            steps = f"{fit.get('n_thoughts', '?')} (fixed)"
            t = ms.get("latentr3")
        else:
            steps = "0 (text: " + (f"{bench['mean_reasoning_tokens']:.0f} tokens)"
                                   if bench else "generated tokens)")
            t = ms.get("cot_generation")
        p = "–"
        if m == "lasar" and diff:
            p = ", ".join(f"{k.replace('NDCG', 'N')} {diff[k]['p']:.3f}" for k in diff)
        rows.append([label, cot, steps, "–" if t is None else f"{t:.2f}",
                     f"{met['NDCG@10']:.4f}", f"{met['HR@10']:.4f}", p])
    notes = [f"{ds}, {prof} profile; N@10 and HR@10 on every test user (Table 1). ms/user: "
             "`bench cot` on its fixed test users, the decoders alternating in one run "
             "(Explicit CoT: CoT generation); – where the run has no bench/cot.json or it did "
             "not time the method."]
    if diff:
        notes.append("LASAR - LatentR3, paired over the same users (95% bootstrap interval; "
                     "p one-sided, LASAR > LatentR3): " + "; ".join(
                         f"{k} {d['diff']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}]"
                         for k, d in diff.items()) + ".")
    header = ["Method", "CoT data needed", "Latent steps", "ms/user", "N@10", "HR@10",
              "p (LASAR > LatentR3)"]
    return write_table(results.root, "latent_comparison", header,
                       lambda style: [[c.replace("_", r"\_") for c in r] for r in rows]
                       if style == "latex" else rows,
                       f"Latent reasoning compared, {ds} ({prof}).",
                       "Latent reasoning compared (not in the paper)", notes)


STUDY_ROWS = (("main", "LatentR3 (as configured)"), ("sft_only", "RL off (SFT only)"))


def write_latentr3_study(results):
    st = results.latentr3_studies
    if st is None:
        return []
    rows = st.get("rows") or {}
    if "main" not in rows:
        return []
    order = [r for r, _ in STUDY_ROWS if r in rows] + sorted(r for r in rows if r not in
                                                            dict(STUDY_ROWS))
    labels = {**dict(STUDY_ROWS),
              **{r: (f"{rows[r]['thoughts']} thoughts" + (", RL off" if r.endswith("_sft")
                                                           else "")
                     if rows[r]["thoughts"] else "no thought (the same SFT; no RL)")
                 for r in rows if r.startswith("thoughts_")}}
    main = np.asarray(rows["main"]["ranks"])
    pairs = {}
    for r in order[1:]:
        ranks = np.asarray(rows[r]["ranks"])
        hit = lambda x: (x > 0) & (x <= 10)
        ndcg = lambda x: np.where(hit(x), 1 / np.log2(np.maximum(x, 1) + 1.0), 0.0)
        pairs[r + ":NDCG@10"] = (ndcg(main), ndcg(ranks))
        pairs[r + ":HR@10"] = (hit(main).astype(float), hit(ranks).astype(float))
    diffs = paired_difference(pairs, *results.boot) if pairs else {}
    body = []
    for r in order:
        v = rows[r]
        d = [diffs.get(f"{r}:{k}") for k in ("NDCG@10", "HR@10")]
        vs = "–" if d[0] is None else "; ".join(
            f"{k} {x['diff']:+.4f} [{x['lo']:+.4f}, {x['hi']:+.4f}]"
            for k, x in zip(("N@10", "HR@10"), d))
        body.append([labels.get(r, r), f"{v['NDCG@10']:.4f}", f"{v['HR@10']:.4f}",
                     f"{v['ms_per_user']:.2f}", vs])
    ds, prof = results.dataset, results.profile
    notes = [f"{ds}, {prof} profile, {st['eval_users']} fixed test users (LASAR's studies' "
             "users). Last column: the main row minus this row, paired over the users, with "
             "its 95% bootstrap interval."]
    header = ["Variant", "N@10", "HR@10", "ms/user", "main - variant"]
    return write_table(results.root, "latentr3_study", header,
                       lambda style: [[c.replace("_", r"\_") for c in r] for r in body]
                       if style == "latex" else body,
                       f"LatentR3: RL and thought count, {ds} ({prof}).",
                       "LatentR3 study: RL on/off, thought count (0 = no thought)", notes)
