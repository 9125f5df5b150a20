"""Progress bars with an ETA (tqdm), quiet when not on a terminal unless forced."""
import os
import sys

from tqdm.auto import tqdm


def progress(total=None, desc="", unit="it", **kw):
    disable = kw.pop("disable", False) or os.environ.get("LASAR_PROGRESS", "auto") == "off"
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, file=sys.stderr,
                dynamic_ncols=True, mininterval=1.0, **kw)
