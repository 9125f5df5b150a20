"""LASAR's paper figures from results/<ds>/<profile>/lasar/studies.json (written by
methods/lasar/studies.py), as PNG (dpi 200) and PDF under results/<ds>/<profile>/figures/:

  figure3   two-stage (Stage 1, then Stage 2 continuing after it) vs the equal-budget mixed
            single-stage runs: validation loss (CE) against training examples since the
            backbone
  figure4a  Force N = k against the Policy Head's adaptive N (sampled, and argmax where
            studied): HR@10 (%) on the studies' fixed test users, 95% bootstrap error bars
  figure4b  N distribution after SFT vs after RL: share of users (%) per N = 1..n_max
  figure5a  RL dynamics: mean N (left axis) and reward (right axis) per RL step, raw points
            faint plus a moving average
  figure5b  per-N HR@10 (%) of the test users the Policy Head gave each N, with each N's
            number of users written on its bar and 95% error bars (bootstrap over that N's
            users, or Wilson from its hit count: reports/figure_data.py)
  figure_lambda  the REINFORCE step-penalty sweep: HR@10 (%, left axis) and mean N (right
            axis) against lambda, 95% bootstrap error bars, the configured lambda marked

Only studies.json (and lasar/predictions.jsonl for Figure 5b's error bars) is read. A figure
whose data are absent is skipped. `figure_data(results)` (reports/figure_data.py) returns the
numbers each figure plots, so tests and reports can check them against studies.json.
"""
from pathlib import Path

import numpy as np

from .figure_data import figure_data

FIGSIZE = (3.4, 2.4)          # one paper column
FONTSIZE = 8
DPI = 200

SFT_COLOR, RL_COLOR = "#4C72B0", "#DD8452"      # seaborn "deep" blue / orange
FORCE_COLOR, ADAPTIVE_COLOR = "#8C8C8C", "#C44E52"
MIXED_COLOR = "#55A868"


# ---------------------------------------------------------------------------------------------
# drawing


def _style():
    """rc params for the paper look, applied inside mpl.rc_context (restored on exit)."""
    import seaborn as sns
    sns.set_theme(style="whitegrid", context="paper")
    import matplotlib as mpl
    mpl.rcParams.update({
        "font.size": FONTSIZE, "axes.titlesize": FONTSIZE, "axes.labelsize": FONTSIZE,
        "xtick.labelsize": FONTSIZE - 1, "ytick.labelsize": FONTSIZE - 1,
        "legend.fontsize": FONTSIZE - 1, "legend.title_fontsize": FONTSIZE - 1,
        "axes.linewidth": 0.6, "grid.linewidth": 0.4, "lines.linewidth": 1.2,
        "lines.markersize": 3, "legend.frameon": True, "legend.framealpha": 0.85,
        "legend.borderpad": 0.3, "legend.handlelength": 1.6,
        "pdf.fonttype": 42, "ps.fonttype": 42, "savefig.dpi": DPI,
    })


def _new_figure():
    """A Figure on the Agg canvas, outside pyplot's global figure registry."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=FIGSIZE, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _draw_figure3(fig, d):
    ax = fig.add_subplot()
    k = 1000.0                                            # x in thousands of examples
    if d["stage1"]:
        x, y = zip(*d["stage1"])
        ax.plot([v / k for v in x], y, "o-", color=SFT_COLOR, label="Two-stage: Stage 1")
    if d["stage2"]:
        x, y = zip(*d["stage2"])
        if d["stage1"]:       # join the two stages so the two-stage run reads as one curve
            ax.plot([d["stage1"][-1][0] / k, x[0] / k], [d["stage1"][-1][1], y[0]], ":",
                    color=RL_COLOR, lw=0.9)
        ax.plot([v / k for v in x], y, "s-", color=RL_COLOR, label="Two-stage: Stage 2")
    styles = ("^--", "v-.", "d:")
    for i, m in enumerate(d["mixed"]):
        x, y = zip(*m["curve"])
        ax.plot([v / k for v in x], y, styles[i % len(styles)], color=MIXED_COLOR,
                alpha=1.0 - 0.35 * i, label=m["label"])
    if d["stage1"] and d["stage2"] and d["stage2_start"]:
        ax.axvline(d["stage2_start"] / k, color="0.5", lw=0.7, ls=":", zorder=0)
    ax.set_xlabel("training examples since the backbone (thousands)")
    ax.set_ylabel("validation loss (CE)")
    ax.set_xlim(left=0)
    # keep the legend off the curves: the mixed curve sits high, two-stage ends low
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi + 0.08 * (hi - lo))
    ax.legend(loc="best")


def _bar_labels(ax, bars, texts, fontsize=FONTSIZE - 2, pad=1.5, box=False, tops=None):
    """Write texts[i] just above bars[i] (or above tops[i], an error bar's end; None:
    nothing); box: on a faint white backing so a reference line behind stays readable."""
    kw = {"bbox": dict(boxstyle="square,pad=0.05", fc="white", ec="none", alpha=0.8)} if box else {}
    for i, (b, t) in enumerate(zip(bars, texts)):
        if t is None:
            continue
        y = b.get_height() if tops is None or tops[i] is None else max(b.get_height(), tops[i])
        ax.annotate(t, (b.get_x() + b.get_width() / 2, y),
                    xytext=(0, pad), textcoords="offset points", linespacing=1.0,
                    ha="center", va="bottom", fontsize=fontsize, zorder=3, **kw)


def _compact(n):
    """User counts short enough to sit over a bar: 935, 4.0k, 35k, 1.2M."""
    n = int(n)
    if n < 1000:
        return str(n)
    if n < 10_000:
        return f"{n / 1000:.1f}k"
    if n < 1_000_000:
        return f"{n / 1000:.0f}k"
    return f"{n / 1e6:.1f}M"


def _error_bars(ax, xs, vals, ci, color="0.15"):
    """95% error bars at xs for the values with an interval in ci (a list aligned with vals,
    None where there is none); -> the bars' upper ends (None where none)."""
    have = [i for i, c in enumerate(ci) if c is not None]
    if have:
        err = [[vals[i] - ci[i][0] for i in have], [ci[i][1] - vals[i] for i in have]]
        ax.errorbar([xs[i] for i in have], [vals[i] for i in have], yerr=np.maximum(err, 0),
                    fmt="none", ecolor=color, elinewidth=0.7, capsize=2, zorder=3)
    return [c[1] if c is not None else None for c in ci]


def _draw_figure4a(fig, d, n_users=None, ci=None):
    ax = fig.add_subplot()
    labels = list(d)
    vals = [d[k] for k in labels]
    colors = [ADAPTIVE_COLOR if k.startswith("Adaptive") else FORCE_COLOR for k in labels]
    ticks = [k.replace("Force ", "Force\n").replace("Adaptive (", "Adaptive\n(").replace(" N)", ")")
             for k in labels]
    bars = ax.bar(range(len(vals)), vals, color=colors, width=0.65)
    for b, k in zip(bars, labels):
        if "argmax" in k:
            b.set_hatch("///")
            b.set_edgecolor("white")
    tops = _error_bars(ax, list(range(len(vals))), vals, [(ci or {}).get(k) for k in labels])
    _bar_labels(ax, bars, [f"{v:.2f}" for v in vals], fontsize=FONTSIZE - 1, tops=tops)
    ax.set_xticks(range(len(vals)), ticks, fontsize=FONTSIZE - 2)
    ax.set_ylabel("HR@10 (%)")
    top = max([v for v in vals] + [t for t in tops if t is not None])
    ax.set_ylim(0, top * 1.18 if top > 0 else 1)
    ax.grid(axis="x", visible=False)
    if n_users:
        note = f"{n_users:,} test users" + ("; 95% bootstrap CI" if ci else "")
        ax.text(0.01, 0.99, note, transform=ax.transAxes,
                ha="left", va="top", fontsize=FONTSIZE - 2, color="0.3")


def _pct(v):
    if v == 0:
        return None
    return f"{v:.1f}" if v >= 0.05 else "<0.1"


def _draw_figure4b(fig, d):
    ax = fig.add_subplot()
    n_max = max(len(v["share"]) for v in d.values())
    xs = np.arange(1, n_max + 1)
    series = [(k, lab, c) for k, lab, c in (("after_sft", "After SFT", SFT_COLOR),
                                            ("after_rl", "After RL", RL_COLOR)) if k in d]
    w = 0.8 / len(series)
    top = 0.0
    for i, (k, lab, c) in enumerate(series):
        share = list(d[k]["share"]) + [0.0] * (n_max - len(d[k]["share"]))
        top = max(top, max(share))
        bars = ax.bar(xs + (i - (len(series) - 1) / 2) * w, share, width=w, color=c,
                      label=f"{lab} (mean N = {d[k]['mean']:.2f})")
        _bar_labels(ax, bars, [_pct(v) for v in share], fontsize=FONTSIZE - 3, pad=1)
    ax.set_xticks(xs)
    ax.set_xlabel("reasoning steps N")
    ax.set_ylabel("share of users (%)")
    ax.set_ylim(0, max(top * 1.3, 1))
    ax.set_yticks([t for t in ax.get_yticks() if 0 <= t <= 100])
    ax.grid(axis="x", visible=False)
    ax.legend(loc="best")


def _sci_scale(values):
    """(factor, label suffix) so that values * factor are in a readable range."""
    m = max((abs(v) for v in values), default=0.0)
    if m == 0 or 1e-2 <= m < 1e3:
        return 1.0, ""
    e = int(np.floor(np.log10(m)))
    return 10.0 ** -e, rf" ($\times 10^{{{e}}}$)"


def _draw_figure5a(fig, d):
    ax = fig.add_subplot()
    handles = []
    if "mean_n" in d:
        m = d["mean_n"]
        ax.plot(m["step"], m["value"], "-", color=SFT_COLOR, alpha=0.25, lw=0.6)
        handles += ax.plot(m["step"], m["moving_average"], "-", color=SFT_COLOR,
                           label=f"mean N (MA {m['window']})")
        ax.set_ylabel("mean N", color=SFT_COLOR)
        ax.tick_params(axis="y", colors=SFT_COLOR)
    else:
        ax.set_yticks([])
    ax.set_xlabel("RL step")
    if "reward" in d:
        r = d["reward"]
        f, suffix = _sci_scale(r["value"])
        ax2 = ax.twinx()
        ax2.plot(r["step"], np.asarray(r["value"]) * f, "-", color=RL_COLOR, alpha=0.25, lw=0.6)
        handles += ax2.plot(r["step"], np.asarray(r["moving_average"]) * f, "-", color=RL_COLOR,
                            label=f"reward (MA {r['window']})")
        ax2.set_ylabel("reward" + suffix, color=RL_COLOR)
        ax2.tick_params(axis="y", colors=RL_COLOR)
        ax2.grid(False)
    ax.legend(handles=handles, loc="upper center", ncol=2, bbox_to_anchor=(0.5, 1.0))
    # leave headroom so the legend sits above both curves
    for a in fig.axes:
        lo, hi = a.get_ylim()
        a.set_ylim(lo, hi + 0.22 * (hi - lo))


def _draw_figure5b(fig, d):
    ax = fig.add_subplot()
    hr, users = d["HR@10"], d["n_users"]
    n_max = max(8, max(hr))
    xs = np.arange(1, n_max + 1)
    vals = [hr.get(int(n), 0.0) for n in xs]
    bars = ax.bar(xs, vals, width=0.65, color=SFT_COLOR)
    for b, n in zip(bars, xs):
        if int(n) not in hr:
            b.set_visible(False)
    tops = _error_bars(ax, list(xs), vals, [(d.get("ci") or {}).get(int(n)) for n in xs])
    _bar_labels(ax, bars, [f"{hr[int(n)]:.2f}\nn={_compact(users[int(n)])}" if int(n) in hr
                           else None for n in xs], fontsize=FONTSIZE - 2, box=True, tops=tops)
    ax.axhline(d["overall_HR@10"], color="0.35", ls="--", lw=0.8, zorder=1,
               label=f"all test users ({d['overall_HR@10']:.2f}%)")
    ax.set_xticks(xs)
    ax.set_xlabel("reasoning steps N (chosen by Policy Head)")
    ax.set_ylabel("HR@10 (%)")
    top = max(vals + [d["overall_HR@10"]] + [t for t in tops if t is not None])
    ax.set_ylim(0, top * 1.35 if top > 0 else 1)
    ax.grid(axis="x", visible=False)
    ax.legend(loc="best")


def _draw_figure_lambda(fig, d):
    ax = fig.add_subplot()
    xs = list(range(len(d["lambda"])))
    ax.plot(xs, d["HR@10"], "o-", color=ADAPTIVE_COLOR, label="HR@10 (%)")
    _error_bars(ax, [x - 0.04 for x in xs], d["HR@10"], d["HR@10_ci"], ADAPTIVE_COLOR)
    ax.set_ylabel("HR@10 (%)", color=ADAPTIVE_COLOR)
    ax.tick_params(axis="y", colors=ADAPTIVE_COLOR)
    ax2 = ax.twinx()
    ax2.plot(xs, d["mean_n"], "s--", color=SFT_COLOR, label="mean N")
    _error_bars(ax2, [x + 0.04 for x in xs], d["mean_n"], d["mean_n_ci"], SFT_COLOR)
    ax2.set_ylabel("mean N", color=SFT_COLOR)
    ax2.tick_params(axis="y", colors=SFT_COLOR)
    ax2.grid(False)
    ax.set_xticks(xs, [f"{v:g}" + ("*" if c else "") for v, c in zip(d["lambda"],
                                                                     d["configured"])])
    ax.set_xlabel("step penalty lambda (* configured)")
    ax.set_xlim(-0.5, len(xs) - 0.5)
    for a in (ax, ax2):
        lo, hi = a.get_ylim()
        a.set_ylim(lo, hi + 0.22 * (hi - lo))
    ax.legend(handles=ax.get_lines()[:1] + ax2.get_lines()[:1], loc="upper center", ncol=2)


def _save(fig, path, fmt):
    """Write `fig` to `path` atomically: a temp file in the same folder, then os.replace."""
    from protocol.io import atomic_open
    kw = {"dpi": DPI} if fmt == "png" else {"metadata": {"CreationDate": None}}
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format=fmt, **kw)
    return Path(path)


DRAW = {"figure3": _draw_figure3, "figure4a": _draw_figure4a, "figure4b": _draw_figure4b,
        "figure5a": _draw_figure5a, "figure5b": _draw_figure5b,
        "figure_lambda": _draw_figure_lambda}


def write_figure(results, name):
    """figures/<name>.{png,pdf} of one figure when its data exist; returns the written paths."""
    import matplotlib as mpl

    data = results.shared("figure_data", lambda: figure_data(results))
    if name not in data:
        return []
    paths = []
    with mpl.rc_context():
        _style()
        fig = _new_figure()
        try:
            if name == "figure4a":
                DRAW[name](fig, data[name], data.get("figure4a_n_users"), data.get("figure4a_ci"))
            else:
                DRAW[name](fig, data[name])
            for fmt in ("png", "pdf"):
                paths.append(_save(fig, results.root / "figures" / f"{name}.{fmt}", fmt))
        finally:
            fig.clear()          # never registered with pyplot: clearing frees it
    return paths


def figure(name):
    """The registry's writer of figure `name` (reports/registry.py)."""
    return lambda results: write_figure(results, name)
