"""Doors for outsiders: `users` exports what `rank` receives, `score` scores a method's own
predictions exactly as the run did, rejects every invalid file with its line and writes
nothing, and its row appears in Table 1 with p-values and against LASAR and the best baseline."""
import json
import shutil

import numpy as np
import pytest

from .conftest import run_cli, write_dataset

# a 20-user sample of 40 users: the results folder's test users are a strict subset
SMALL = ("--profile", "smoke", "--set", "max_users=20")


@pytest.fixture(scope="module")
def gru_run(tmp_path_factory):
    """GRU4Rec (one epoch) on a toy dataset, 20 of its 40 users; a copy of its folder stands in
    for LASAR (same predictions), so Table 1 computes p-values."""
    tmp = tmp_path_factory.mktemp("ext")
    write_dataset(tmp / "data", n_users=40, n_items=30)
    out = tmp / "results"
    r = run_cli("run", "toy", *SMALL, "--methods", "gru4rec", "--set", "gru4rec.epochs=1",
                "--data-dir", tmp / "data", "--out", out)
    assert r.returncode == 0, r.stderr[-3000:]
    root = out / "toy" / "smoke"
    shutil.copytree(root / "gru4rec", root / "lasar")
    man = json.loads((root / "lasar" / "manifest.json").read_text())
    (root / "lasar" / "manifest.json").write_text(json.dumps({**man, "method": "lasar",
                                                              "display_name": "LASAR"}))
    return tmp / "data", out, root


def _score(data, out, path, name="Outside", *extra):
    return run_cli("score", "toy", *SMALL, "--predictions", path, "--name", name,
                   "--data-dir", data, "--out", out, *extra)


def _rows(root):
    return [json.loads(x) for x in (root / "gru4rec" / "predictions.jsonl").read_text()
            .splitlines()]


def test_users_exports_what_rank_receives(gru_run, tmp_path):
    from benchmark.plan import Plan, RunRequest
    data, out, _ = gru_run
    r = run_cli("users", "toy", *SMALL, "--split", "test", "--to", tmp_path / "u.jsonl",
                "--data-dir", data, "--out", out)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "u.jsonl").read_text().splitlines()]
    plan = Plan(RunRequest("toy", "smoke", ["gru4rec"], data, out, ["max_users=20"]))
    test, ds = plan.split.test, plan.dataset
    assert [r["user"] for r in rows] == [ds.user_ids[u] for u in test.users]
    assert [r["history"] for r in rows] == [[ds.item_ids[i] for i in h]
                                           for h in test.histories()]
    assert [r["target"] for r in rows] == [ds.item_ids[t] for t in test.targets]
    assert len(rows) == 20 < ds.n_users and "history_sids" not in rows[0]   # no SID table


def test_a_methods_own_predictions_score_exactly_as_its_run(gru_run):
    data, out, root = gru_run
    r = _score(data, out, root / "gru4rec" / "predictions.jsonl", "GRUAgain")
    assert r.returncode == 0, r.stderr[-3000:]
    ext = root / "external" / "GRUAgain"
    assert (json.loads((ext / "metrics.json").read_text())
            == json.loads((root / "gru4rec" / "metrics.json").read_text()))
    man = json.loads((ext / "manifest.json").read_text())
    assert man["kind"] == "external" and len(man["predictions_file"]["sha256"]) == 64
    assert man["command"][:4] == ["python", "-m", "benchmark", "score"]
    t1 = (root / "tables" / "table1.md").read_text()
    assert "| GRUAgain (external) |" in t1
    assert t1.index("GRU4Rec") < t1.index("GRUAgain (external)")       # after the paper's
    assert "| GRUAgain (external) |" in (root / "tables" / "table1_pvalues.md").read_text()
    comp = (root / "tables" / "external_comparison.md").read_text()
    # the same predictions as LASAR and as GRU4Rec (the best baseline): every difference 0
    assert comp.count("+0.0000 [+0.0000, +0.0000]") == 4 and "(best baseline)" in comp
    assert "External rows against LASAR" in (root / "report.md").read_text()
    # --only-reports (the tables command) keeps the external row
    r = run_cli("tables", "toy", *SMALL, "--out", out)
    assert r.returncode == 0
    assert "GRUAgain (external)" in (root / "tables" / "table1.md").read_text()


def _write(path, rows, raw=()):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "".join(raw))
    return path


def test_every_invalid_file_is_rejected_with_its_line_and_writes_nothing(gru_run, tmp_path):
    data, out, root = gru_run
    rows = _rows(root)
    users = {r["user"] for r in rows}
    outsider = next(str(u) for u in range(1, 41) if str(u) not in users)
    bad_target = [dict(rows[0], target=rows[0]["topk"][0] if rows[0]["topk"][0] !=
                       rows[0]["target"] else rows[0]["topk"][1])] + rows[1:]
    cases = {
        "json": (_write(tmp_path / "a.jsonl", rows[1:], ["{not json\n"]),
                 [":20: not valid JSON", f"1 of 20 test users missing (e.g. {rows[0]['user']})"]),
        "missing": (_write(tmp_path / "b.jsonl", rows[:-1]), ["1 of 20 test users missing"]),
        "repeated": (_write(tmp_path / "c.jsonl", rows + [rows[3]]),
                     [f":21: user {rows[3]['user']} repeated (first on line 4)"]),
        "target": (_write(tmp_path / "d.jsonl", bad_target),
                   [":1: target", f"is not user {rows[0]['user']}'s last item"]),
        "short": (_write(tmp_path / "e.jsonl", [dict(rows[0], topk=rows[0]["topk"][:10])]
                         + rows[1:]), [":1: 10 items, not 30; --allow-short"]),
        "distinct": (_write(tmp_path / "f.jsonl", [dict(rows[0], topk=rows[0]["topk"][:29]
                                                        + rows[0]["topk"][:1])] + rows[1:]),
                     [":1: the list repeats an item"]),
        "unknown": (_write(tmp_path / "g.jsonl", [dict(rows[0], topk=["nope"] +
                                                       rows[0]["topk"][1:])] + rows[1:]),
                    [":1: unknown item id(s) 'nope'"]),
        "sample": (_write(tmp_path / "h.jsonl", rows + [dict(rows[0], user=outsider)]),
                   [f":21: user {outsider} is not one of this results folder's test users",
                    "fixed-seed sample of 20 of 40 users", "python -m benchmark users toy"]),
        "fields": (_write(tmp_path / "i.jsonl", [{"user": rows[0]["user"]}] + rows[1:]),
                   [':1: needs an object with "user", "target" and "topk"']),
    }
    for case, (path, lines) in cases.items():
        r = _score(data, out, path, f"Bad{case}")
        assert r.returncode == 2, (case, r.stderr[-2000:])
        err = r.stderr
        assert err.count("error:") == 1 and "nothing was scored" in err, (case, err)
        for line in lines:
            assert line in err, (case, line, err)
        assert not (root / "external" / f"Bad{case}").exists(), case
    # many bad lines: the first 20 are listed, not all of them
    r = _score(data, out, _write(tmp_path / "many.jsonl", [], ["{bad\n"] * 40), "Many")
    assert r.returncode == 2 and r.stderr.count("not valid JSON") == 20
    assert "20 problem(s)" in r.stderr and "the first ones" in r.stderr
    # a byte-order mark is not a problem
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + (root / "gru4rec" / "predictions.jsonl").read_bytes())
    assert _score(data, out, bom, "Bom").returncode == 0
    # a short list is scored with --allow-short: a target past it is a miss
    r = _score(data, out, cases["short"][0], "Short", "--allow-short")
    assert r.returncode == 0, r.stderr[-3000:]
    ext = json.loads((root / "external" / "Short" / "metrics.json").read_text())
    full = json.loads((root / "gru4rec" / "metrics.json").read_text())
    assert ext["HR@5"] == full["HR@5"] and ext["HR@20"] <= full["HR@20"]
    assert json.loads((root / "external" / "Short" / "manifest.json").read_text())[
        "predictions_file"]["short_lists"] == 1
    # a bad name
    r = _score(data, out, root / "gru4rec" / "predictions.jsonl", "../escape")
    assert r.returncode == 2 and "--name" in r.stderr
    assert np.all([p.name != "escape" for p in (root.parent).iterdir()])


TYPES = {"str": str, "int": int, "float": float, "dict": dict, "list[str]": list,
         "dict or null": (dict, type(None))}


def readme_schema():
    """[(file, field, type, in)] from the README's results-files table."""
    from .conftest import REPO
    text = (REPO / "README.md").read_text()
    section = text[text.index("### Results files"):]
    section = section[:section.index("\n### ", 5)]
    out = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].endswith((".jsonl", ".json")):
            for field in cells[1].split(", "):
                out.append((cells[0], field, cells[2], cells[3]))
    return out


def test_run_files_match_the_documented_schema(gru_run):
    """Every file a method run and an external row write has each documented field of its
    kind with the documented type, and no undocumented top-level field."""
    data, out, root = gru_run
    schema = readme_schema()
    assert len(schema) > 20
    ext = root / "external" / "Schema"
    if not ext.is_dir():
        r = _score(data, out, root / "gru4rec" / "predictions.jsonl", "Schema")
        assert r.returncode == 0, r.stderr[-3000:]
    for folder, kind in ((root / "gru4rec", "method"), (ext, "external")):
        for name in ("predictions.jsonl", "metrics.json", "manifest.json"):
            text = (folder / name).read_text()
            recs = ([json.loads(x) for x in text.splitlines()] if name.endswith("jsonl")
                    else [json.loads(text)])
            fields = [(f, t, w) for fl, f, t, w in schema if fl == name]
            for rec in recs:
                for f, t, where in fields:
                    if where in ("all", kind):
                        assert f in rec, (folder.name, name, f)
                    if f in rec:
                        assert isinstance(rec[f], TYPES[t]), (name, f, type(rec[f]))
                        if t == "list[str]":
                            assert all(isinstance(x, str) for x in rec[f])
                extra = set(rec) - {f for f, _, _ in fields}
                assert not extra, (folder.name, name, extra)
