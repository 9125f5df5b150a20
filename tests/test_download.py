"""`data download` against a loopback HTTP server serving small gzipped files the test writes
(the real hosts are never contacted): conversion to a dataset `data stats` reads, resuming a
dropped connection with a Range request, and one line when the host is unreachable."""
import gzip
import http.server
import json
import socket
import threading

import pytest

from recdata.download import SOURCES, download, fetch

from .conftest import run_cli


def _gz(lines):
    import io
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write("".join(x + "\n" for x in lines).encode())
    return buf.getvalue()


def raw_files(name):
    """{file name: bytes}: 7 users x 6 items, every user rating every item (2014 style: Python
    dict literals), and metadata with titles."""
    reviews = [repr({"reviewerID": f"U{u}", "asin": f"B{i:04d}", "unixReviewTime": 1000 + i})
               for u in range(7) for i in range(6)]
    meta = [repr({"asin": f"B{i:04d}", "title": f"Thing {i}", "brand": "Acme",
                  "categories": [["Sports & Outdoors", "Cycling"]]}) for i in range(6)]
    rev_url, meta_url = SOURCES[name]
    return {rev_url.rsplit("/", 1)[1]: _gz(reviews), meta_url.rsplit("/", 1)[1]: _gz(meta)}


class Server:
    """Serves `files`; honours Range; `drop` = {name: bytes}: the first full request of that
    file sends only that many bytes and closes the connection."""

    def __init__(self, files, drop=None, fail=0):
        self.files, self.drop, self.requests, self.fail = files, dict(drop or {}), [], fail
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[1]
                data = outer.files.get(name)
                rng = self.headers.get("Range")
                outer.requests.append((name, rng))
                if data is None:
                    self.send_error(404)
                    return
                if outer.fail:                       # a server error before serving
                    outer.fail -= 1
                    self.send_error(503)
                    return
                start = int(rng.split("=")[1].rstrip("-")) if rng else 0
                body = data[start:]
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = outer.drop.pop(name, None) if not rng else None
                self.wfile.write(body[:cut] if cut is not None else body)
                if cut is not None:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    files = raw_files("sports")
    s = Server(files, drop={n: len(b) // 2 for n, b in files.items()})
    yield s
    s.close()


def test_download_resumes_a_dropped_connection_and_converts(server, tmp_path):
    r = run_cli("data", "download", "sports", "--to", tmp_path / "d", "--base-url", server.url)
    assert r.returncode == 0, r.stderr[-3000:]
    for name, data in server.files.items():
        assert (tmp_path / "d" / "raw" / name).read_bytes() == data
        assert not (tmp_path / "d" / "raw" / (name + ".part")).exists()
        ranges = [rng for n, rng in server.requests if n == name]
        assert ranges == [None, f"bytes={len(data) // 2}-"]      # dropped, then resumed
    assert "7 users, 6 items, 42 interactions" in r.stdout
    assert "different" in r.stdout and "--data-dir" in r.stdout
    sums = (tmp_path / "d" / "raw" / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == 2 and all(len(x.split()[0]) == 64 for x in sums)
    r = run_cli("data", "stats", "sports", "--json", "--data-dir", tmp_path / "d")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])["users"] == 7
    items = [json.loads(x) for x in (tmp_path / "d" / "sports" / "items.jsonl").read_text()
             .splitlines()]
    assert items[0]["title"].startswith("Thing") and items[0]["brand"] == "Acme"
    # a second call finds the files and downloads nothing
    n = len(server.requests)
    assert download("sports", tmp_path / "d", server.url)["users"] == 7
    assert len(server.requests) == n


def test_a_part_file_left_by_a_killed_run_is_resumed(tmp_path):
    files = raw_files("beauty")
    s = Server(files)
    try:
        name, data = next(iter(files.items()))
        (tmp_path / (name + ".part")).write_bytes(data[:100])
        fetch(s.url + name, tmp_path / name)
        assert (tmp_path / name).read_bytes() == data
        assert s.requests == [(name, "bytes=100-")]
    finally:
        s.close()


def test_server_errors_are_retried_and_a_missing_file_is_one_line(tmp_path):
    files = raw_files("beauty")
    s = Server(files, fail=2)
    try:
        name, data = next(iter(files.items()))
        fetch(s.url + name, tmp_path / name)
        assert (tmp_path / name).read_bytes() == data and len(s.requests) == 3
        from protocol.errors import BenchmarkError
        with pytest.raises(BenchmarkError, match="HTTP 404"):
            fetch(s.url + "nope.json.gz", tmp_path / "nope.json.gz")
    finally:
        s.close()


def test_unreachable_host_is_one_line(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()                                  # nothing listens there
    r = run_cli("data", "download", "instruments", "--to", tmp_path / "d", "--base-url",
                f"http://127.0.0.1:{port}/")
    assert r.returncode == 2
    err = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and "unreachable" in err[0] and "by hand" in err[0]
    assert str(tmp_path / "d" / "raw" / "Musical_Instruments_5.json.gz") in err[0]
    assert not (tmp_path / "d" / "instruments").exists()
