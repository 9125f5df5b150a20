"""Fetch the public Amazon review and metadata files a dataset comes from, then convert them
(`python -m benchmark data download sports|beauty|instruments --to DIR`).

Sources (McAuley et al.): the 2014 5-core files for Sports and Beauty, the 2018 5-core file
for Instruments, each with its category's metadata (titles, brand, categories: Instruments gets
its item text this way, which the prepared copy lacks). A download goes to DIR/raw/<file>.part
and is renamed when complete: an interrupted one resumes with an HTTP Range request, and a
dropped connection is retried from where it stopped. The size is checked against the server's
Content-Length; the publisher gives no checksums, so each file's sha256 is recorded in
DIR/raw/SHA256SUMS for comparison with another copy. Then the files are converted
(amazon_raw.convert) to DIR/<dataset>/ and the user and item counts are compared with the
paper's Table 6 (the prepared copies match it; a raw 5-core file need not, see the note).
"""
import http.client
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from protocol.errors import BenchmarkError
from protocol.io import file_sha256
from protocol.progress import progress

SNAP = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"
UCSD = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/"
SOURCES = {
    "sports": (SNAP + "reviews_Sports_and_Outdoors_5.json.gz",
               SNAP + "meta_Sports_and_Outdoors.json.gz"),
    "beauty": (SNAP + "reviews_Beauty_5.json.gz", SNAP + "meta_Beauty.json.gz"),
    "instruments": (UCSD + "categoryFilesSmall/Musical_Instruments_5.json.gz",
                    UCSD + "metaFiles2/meta_Musical_Instruments.json.gz"),
}
TABLE6 = {"sports": (35598, 18357), "beauty": (22363, 12101), "instruments": (24772, 9922)}
CHUNK = 1 << 16


def _get(url, start, timeout):
    req = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    return urllib.request.urlopen(req, timeout=timeout)


def _check_gzip(path, url):
    """A download without a Content-Length ends at EOF whether or not it was cut: a .gz must
    then decompress to its end (a cut one raises, and the .part is resumed on the retry)."""
    import gzip
    if not str(url).endswith(".gz"):
        return
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    except (EOFError, OSError) as e:
        raise http.client.IncompleteRead(b"", None) from e


def fetch(url, dest, retries=5, timeout=60):
    """Download `url` to `dest` (via dest.part, resumed when present). -> dest."""
    dest = Path(dest)
    if dest.is_file():
        return dest
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    total, tries = None, 0
    with progress(total=None, unit="B", unit_scale=True, desc=dest.name) as bar:
        while True:
            have = part.stat().st_size if part.is_file() else 0
            try:
                with _get(url, have, timeout) as r:
                    if have and r.status != 206:        # no Range support: start again
                        have = 0
                    length = r.headers.get("Content-Length")
                    if length is not None:
                        total = have + int(length)
                        bar.total = total
                    bar.n = have
                    bar.refresh()
                    with open(part, "ab" if have else "wb") as f:
                        while True:
                            block = r.read(CHUNK)
                            if not block:
                                break
                            f.write(block)
                            bar.update(len(block))
                size = part.stat().st_size
                if total is None:                       # no length given: gzip must be whole
                    _check_gzip(part, url)
                if total is not None and size < total:
                    raise http.client.IncompleteRead(b"", total - size)
                if total is not None and size != total:
                    raise BenchmarkError(f"{url}: got {size} bytes, the server said {total}; "
                                         f"delete {part} and run again")
                part.replace(dest)
                return dest
            except urllib.error.HTTPError as e:
                whole = (e.headers.get("Content-Range") or "").rpartition("/")[2]
                if e.code == 416 and have and whole.isdigit() and int(whole) == have:
                    part.replace(dest)                  # asked past the end: the part is whole
                    return dest
                if e.code >= 500 and tries < retries:   # a server error: try again
                    tries += 1
                    time.sleep(min(2 ** tries, 10) * 0.1)
                    continue
                raise BenchmarkError(f"{url}: HTTP {e.code} {e.reason}; download it by hand "
                                     f"to {dest}") from None
            except (urllib.error.URLError, socket.timeout, OSError,
                    http.client.HTTPException) as e:
                reached = part.is_file() and part.stat().st_size > have
                tries = 1 if reached else tries + 1     # progress resets the retry count
                if (isinstance(e, urllib.error.URLError) and not reached and tries > 1
                        or tries > retries):
                    host = urllib.request.urlparse(url).netloc
                    raise BenchmarkError(
                        f"cannot download {url} ({host} unreachable: "
                        f"{getattr(e, 'reason', e)}); on a machine with internet fetch it by "
                        f"hand and put it at {dest}, then run this command again") from None
                time.sleep(min(2 ** tries, 10) * 0.1)


def download(name, to, base_url=None, retries=5, timeout=60):
    """Fetch and convert dataset `name` into `to`/<name>/. `base_url` replaces each source's
    folder (a mirror, or the tests' loopback server). -> {users, items, interactions, files,
    table6: (users, items) of the paper, matches_table6}."""
    from .amazon_raw import convert
    if name not in SOURCES:
        raise BenchmarkError(f"unknown dataset '{name}'; choose from {', '.join(SOURCES)}")
    to = Path(to)
    raw = to / "raw"
    files = []
    for url in SOURCES[name]:
        if base_url:
            url = base_url.rstrip("/") + "/" + url.rsplit("/", 1)[1]
        files.append(fetch(url, raw / url.rsplit("/", 1)[1], retries, timeout))
    sums = raw / "SHA256SUMS"
    lines = {ln.split()[-1]: ln for ln in (sums.read_text().splitlines() if sums.is_file()
                                           else [])}
    for f in files:
        lines[f.name] = f"{file_sha256(f)}  {f.name}"
    sums.write_text("".join(v + "\n" for _, v in sorted(lines.items())))
    users, items, inter = convert(files[0], files[1], to / name, 5)
    want = TABLE6[name]
    return {"users": users, "items": items, "interactions": inter,
            "files": [str(f) for f in files], "table6": want,
            "matches_table6": (users, items) == want}
