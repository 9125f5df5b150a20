"""Table formatting: LaTeX (booktabs) and Markdown, with best bold and second underlined."""
import re

import numpy as np


def rank_marks(values, digits=4):
    """For one column: 'best' / 'second' / '' per row. Values are compared as `cell` shows
    them (`digits` decimals), so values that read the same share the mark; 'second' goes to
    the next value below the best. No mark for a value that reads as zero (a tie of zeros
    ranks nothing), nor anywhere in a column whose every value reads the same."""
    vals = np.array([np.nan if v is None else float(f"{v:.{digits}f}") for v in values])
    distinct = sorted({v for v in vals if not np.isnan(v)}, reverse=True)
    if len(distinct) < 2:
        return [""] * len(vals)
    marks = []
    for v in vals:
        if np.isnan(v) or v == 0:
            marks.append("")
        elif v == distinct[0]:
            marks.append("best")
        elif v == distinct[1]:
            marks.append("second")
        else:
            marks.append("")
    return marks


MARKS_NOTE = ("Best in bold, second underlined, as the 4-decimal values read: values that read "
              "the same share the mark; a value that reads 0.0000 gets none, nor does a column "
              "whose values all read the same.")


def cell(value, mark, style, digits=4, suffix=""):
    if value is None:
        return "--" if style == "latex" else "–"
    s = f"{value:.{digits}f}{suffix}"
    if mark == "best":
        return rf"\textbf{{{s}}}" if style == "latex" else f"**{s}**"
    if mark == "second":
        return rf"\underline{{{s}}}" if style == "latex" else f"<u>{s}</u>"
    return s


def latex_text(text):
    """Plain text for a LaTeX note: the characters LaTeX reads as commands escaped (a bare '%'
    would drop the rest of the line as a comment, a bare '_' is an error outside math); an
    already escaped one is left as it is."""
    return re.sub(r"(?<!\\)([%_&#$])", r"\\\1", text)


def latex_table(header, rows, caption, label, notes=()):
    cols = "l" + "c" * (len(header) - 1)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{caption}}}", rf"\label{{{label}}}",
             rf"\begin{{tabular}}{{{cols}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
    lines += [" & ".join(r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [rf"\par\smallskip\footnotesize {latex_text(n)}" for n in notes]
    lines += [r"\end{table}"]
    return "\n".join(lines) + "\n"


def markdown_table(header, rows, title, notes=()):
    lines = [f"**{title}**", "", "| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + [":---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [""] + [f"{n}  " for n in notes]
    return "\n".join(lines) + "\n"


def write_table(root, stem, header, rows_fn, caption, title, notes=()):
    """tables/<stem>.tex and tables/<stem>.md under `root`; rows_fn(style) gives the rows for
    "latex" or "md". Returns the two paths."""
    from pathlib import Path

    from protocol.io import atomic_write_text
    paths = []
    for style, ext in (("latex", "tex"), ("md", "md")):
        rows = rows_fn(style)
        text = (latex_table(header, rows, caption, f"tab:{stem}", notes) if style == "latex"
                else markdown_table(header, rows, title, notes))
        path = Path(root) / "tables" / f"{stem}.{ext}"
        atomic_write_text(path, text)
        paths.append(path)
    return paths


def hms(seconds):
    """A duration as H:MM:SS ('–' for None)."""
    if seconds is None:
        return "–"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
