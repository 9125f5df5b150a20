"""Progress bars with an ETA (tqdm), quiet when not on a terminal unless forced, and in the
helper processes of a distributed run (the main process's bar counts the whole group's work:
methods/lm/decode.py sharded_rows)."""
import os
import sys

from tqdm.auto import tqdm

from .dist import is_main_process


def progress(total=None, desc="", unit="it", **kw):
    disable = (kw.pop("disable", False) or os.environ.get("LASAR_PROGRESS", "auto") == "off"
               or not is_main_process())
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, file=sys.stderr,
                dynamic_ncols=True, mininterval=1.0, **kw)
