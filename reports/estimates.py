"""The plan checked against the run: each stage's estimated time and peak memory (plan.json,
written by benchmark/estimate.py before the run's work) beside what the stage measured
(protocol/measure.py, in the method's manifest: `fit_info.<stage>.measured`, or the runner's
`timings`), with their ratio. Every run checks its estimator this way.

Measured memory is the stage's own peak: the resident set on the CPU (which includes the
process's libraries and data; the plan counts them as `process`), torch's peak allocation on a
GPU. Ranking and the studies record their time only. Stages the plan found cached show the
measurement of the run that built them.
"""
from .fmt import hms, write_table


def _lookup(manifest, where):
    """The value at dotted path `where` of a manifest (None where absent)."""
    node = manifest
    for part in where.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def measured_of(manifest, where):
    """(seconds, peak MiB or None, MiB the process held when the stage began or None) a stage
    recorded at `where` (the last only on the CPU, where the peak includes it)."""
    node = _lookup(manifest or {}, where)
    if isinstance(node, (int, float)):
        return float(node), None, None
    m = node.get("measured") if isinstance(node, dict) else None
    if not m:
        return None, None, None
    if "peak_gpu_mb" in m:
        return m.get("seconds"), m["peak_gpu_mb"], None
    return m.get("seconds"), m.get("peak_rss_mb"), m.get("start_rss_mb")


def estimate_rows(results):
    """[{method, stage, status, est_s, meas_s, est_mib, meas_mib}] of the run's plan.json:
    one row per stage, the studies of a method in one row (they are timed together); None
    without a plan."""
    plan = results.plan
    if not plan:
        return None
    rows, studies = [], {}
    for st in plan["stages"]:
        where = st.get("measured_at")
        mem = (st.get("memory") or {}).get("total")
        row = {"method": st["method"], "stage": st["name"], "status": st["status"],
               "est_s": st.get("seconds"), "est_mib": mem / 2 ** 20 if mem else None,
               "meas_s": None, "meas_mib": None, "start_mib": None}
        found = results.methods.get(st["method"])
        if where == "timings.studies_s":
            agg = studies.get(st["method"])
            if agg is None:
                agg = studies[st["method"]] = {**row, "stage": "studies (all)", "est_mib": None,
                                               "est_s": 0.0}
                rows.append(agg)
                if found is not None:
                    agg["meas_s"] = measured_of(found.manifest, where)[0]
            agg["est_s"] = (agg["est_s"] + st["seconds"] if agg["est_s"] is not None
                            and st.get("seconds") is not None else None)
            continue
        if found is not None and where:
            row["meas_s"], row["meas_mib"], row["start_mib"] = measured_of(found.manifest, where)
        rows.append(row)
    return rows


def _ratio(est, meas):
    return f"{est / meas:.2f}" if est and meas else "–"


def _mib(v):
    return f"{v / 1024:.2f}" if v else "–"


def write_estimates(results):
    """tables/estimates.{md,tex}: estimated against measured time and memory per stage."""
    rows = estimate_rows(results)
    if not rows:
        return []
    cal = results.plan.get("calibration") or {}

    def body(style):
        return [[r["method"], r["stage"], r["status"], hms(r["est_s"]), hms(r["meas_s"]),
                 _ratio(r["est_s"], r["meas_s"]), _mib(r["est_mib"]), _mib(r["meas_mib"]),
                 _ratio(r["est_mib"], r["meas_mib"]), _mib(r["start_mib"])] for r in rows]
    note = (f"Estimates from plan.json, written before the run's work ({results.plan['written']}; "
            f"calibrated on {cal.get('device', '–')} in {cal.get('seconds', '–')} s). Measured: "
            "each stage's wall time and peak memory (RSS on the CPU, torch's peak allocation on "
            "a GPU), from the method's manifest; '–' where the stage records none (ranking and "
            "the studies record their time). A cached stage shows the run that built it. 'held "
            "before': the resident set when the stage began (CPU only): the process's earlier "
            "stages leave memory the allocator keeps, which the peak includes and the plan "
            "counts only as of its own start.")
    header = ["method", "stage", "status", "est. time", "measured", "ratio", "est. GiB",
              "measured GiB", "ratio", "held before"]
    return write_table(results.root, "estimates", header, body,
                       "Estimated vs measured cost per stage.",
                       "Estimated vs measured cost per stage", notes=[note])
