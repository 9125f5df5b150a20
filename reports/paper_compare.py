"""The reproduced numbers next to the paper's (reports/paper_numbers.yaml); the claims and
their verdicts are reports/claims.py's.

Reads only results/<dataset>/<profile>/ (metrics.json, lasar/studies.json, bench/cot.json,
_scaling/) and the transcribed paper numbers. Writes tables/paper_comparison.{md,tex,csv}.
"""
import csv
import io

import numpy as np

from protocol.io import atomic_write_text

from . import paper
from .fmt import write_table
from .table4 import table4_data
from .table5 import table5_data


def _share_34(dist):
    c = np.asarray(dist["counts"], dtype=float)
    return float((c[2] + c[3]) / c.sum()) if c.sum() else None


def _rl_mean_n(log, head=True):
    """Mean N at the start (first 10% of steps) or end (last 20%) of RL."""
    v = [r["mean_n"] for r in log if "mean_n" in r]
    if not v:
        return None
    k = max(1, len(v) // (10 if head else 5))
    return float(np.mean(v[:k] if head else v[-k:]))


def reproduced(results):
    """{(table, dataset, row, field): value} for every number this run can set against the
    paper's."""
    ds = results.dataset
    out = {}
    found = results.methods
    for m in found:
        for k, v in found[m].metrics.items():
            if k != "n_users":
                out[("table1", ds, m, k)] = v
    st = results.studies
    if st:
        rows = st["rows"]
        align_table = "table2" if ds == "beauty" else "table9"
        for r in ("pure_sft", "sft_align_none", "sft_align_kl", "sft_align_cosine",
                  "sft_align_mse"):
            for k, v in rows.get(r, {}).items():
                if k.startswith(("NDCG", "HR")):
                    out[(align_table, ds, r, k)] = v
        for r in ("rl_latent_only", "rl_terminal_kl", "rl_full"):
            for k, v in rows.get(r, {}).items():
                if k.startswith(("NDCG", "HR")):
                    out[("table3", ds, r, k)] = v
            if (rows.get(r) or {}).get("n_dist"):
                out[("table3", ds, r, "mean_n")] = rows[r]["n_dist"]["mean"]
        if "minionerec" in found and st.get("eval_user_ids"):
            for k, v in found["minionerec"].subset_metrics(st["eval_user_ids"]).items():
                out[("table3", ds, "minionerec", k)] = v
        for r, v in rows.items():
            if r.startswith("force_") and "HR@10" in v:
                out[("figure4a", ds, r, "HR@10")] = v["HR@10"]
        if "rl_full" in rows:
            out[("figure4a", ds, "adaptive", "HR@10")] = rows["rl_full"]["HR@10"]
        if st.get("n_dist_after_sft"):
            out[("figure4b", ds, "sft", "share_n3_n4")] = _share_34(st["n_dist_after_sft"])
        final = st.get("n_dist_final_all_users") or st.get("n_dist_final_subset")
        if final:
            out[("figure4b", ds, "rl", "mean_n")] = final["mean"]
        if st.get("rl_log"):
            out[("figure5a", ds, "rl", "mean_n_start")] = _rl_mean_n(st["rl_log"], True)
            out[("figure5a", ds, "rl", "mean_n_end")] = _rl_mean_n(st["rl_log"], False)
        for n, v in (st.get("per_n_all_users") or {}).items():
            if v.get("n_users"):
                out[("figure5b", ds, f"n_{n}", "HR@10")] = v["HR@10"]
        for r in st.get("table8") or []:
            for k in ("share", "hist_len", "cat_div"):
                out[("table8", ds, f"segments_{r['segments']}", k)] = r[k]
    t4 = table4_data(results)
    if t4:
        for r in t4["rows"]:
            row = r["key"] if r["key"] != "plain" else "minionerec"
            out[("table4", ds, row, "s_per_sample")] = r["ms_per_sample"] / 1000
            if r["total_s"] is not None:
                out[("table4", ds, row, "total_s")] = r["total_s"]
    t5 = table5_data(results)
    if t5:
        for i, (_, _, rows, _) in enumerate(t5["scales"][:2]):
            for m, met in rows.items():
                for k in ("NDCG@10", "HR@10"):
                    out[("table5", f"{ds}/{'small' if i == 0 else 'large'}", m, k)] = met[k]
    return out


def comparison_rows(results):
    """Every paper number of this run's dataset, with ours where we measured it."""
    ds = results.dataset
    ours = reproduced(results)
    rows = []
    for table, by_ds in paper.load().items():
        if table in ("text", "table6") or not isinstance(by_ds, dict):
            continue
        for dkey, by_row in by_ds.items():
            datasets = [dkey] if table != "table5" else [f"{dkey}/{s}" for s in by_row]
            for dname in datasets:
                if dname.split("/")[0] != ds:
                    continue
                node = by_row if table != "table5" else by_row[dname.split("/")[1]]
                for row, fields in node.items():
                    if not isinstance(fields, dict):
                        continue
                    for field, pv in fields.items():
                        if isinstance(pv, bool) or not isinstance(pv, (int, float)):
                            continue
                        if field == "total":        # Table 4: minutes or hours -> seconds
                            pv = pv * {"s": 1, "min": 60, "h": 3600}[fields["total_unit"]]
                            field = "total_s"
                        if field.startswith("delta_") or field in ("segments", "n_min", "n_max"):
                            continue
                        ov = ours.get((table, dname, row, field))
                        rows.append({"table": table, "dataset": dname, "row": row,
                                     "field": field, "paper": float(pv), "ours": ov,
                                     "ratio": (ov / pv) if ov is not None and pv else None})
    # methods the paper does not have (LatentR3): their Table 1 numbers, the paper's "–"
    in_paper = {r["row"] for r in rows if r["table"] == "table1"}
    for (table, dname, row, field), v in sorted(ours.items()):
        if table == "table1" and in_paper and row not in in_paper:
            rows.append({"table": table, "dataset": dname, "row": row, "field": field,
                         "paper": None, "ours": v, "ratio": None})
    return rows


def write_comparison(results):
    if not (rows := comparison_rows(results)):
        return []
    ds, prof = results.dataset, results.profile
    header = ["Source", "Row", "Field", "Paper", "Ours", "Ours / paper"]

    def f(v, field):
        if v is None:
            return "–"
        if field == "total_s":
            return f"{v:.0f}"
        return f"{v:.2f}" if field in ("mean_n", "hist_len", "cat_div", "mean_n_start",
                                        "mean_n_end") else f"{v:.4f}"
    body = [[r["table"], r["row"], r["field"], f(r["paper"], r["field"]), f(r["ours"], r["field"]),
             "–" if r["ratio"] is None else f"{r['ratio']:.2f}"] for r in rows]
    papers = [r for r in rows if r["paper"] is not None]
    n_ours = sum(r["ours"] is not None for r in papers)
    notes = [f"{ds}, {prof} profile: {n_ours} of the paper's {len(papers)} numbers for {ds} "
             "reproduced here (– = not measured by this run: the paper reports it for another "
             "setting, or the run lacks the method or study; a paper value of – is a method "
             "the paper does not have, e.g. LatentR3). Paper values from "
             "reports/paper_numbers.yaml; s_per_sample in seconds (ours on this machine, not 8x "
             "L40); Figure 5a's start/end mean N are the first 10% / last 20% of RL steps."]
    paths = write_table(results.root, "paper_comparison", header,
                        lambda style: [[c.replace("_", r"\_") for c in r] for r in body]
                        if style == "latex" else body,
                        f"Reproduced vs published numbers, {ds} ({prof}).",
                        "Reproduced vs published numbers", notes)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["table", "dataset", "row", "field", "paper", "ours",
                                        "ratio"])
    w.writeheader()
    w.writerows(rows)
    p = results.root / "tables" / "paper_comparison.csv"
    atomic_write_text(p, buf.getvalue())
    return paths + [p]
