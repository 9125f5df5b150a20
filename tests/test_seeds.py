"""Several seeds (`--seeds`): every method once per seed in seed-<s>/, the same test users in
every seed, one queue of children, resumable; Table 1 as mean +- std and the seed-pooled
bootstrap (reports/seeds.py) against hand computations."""
import json

import numpy as np
import pytest

from benchmark.cli import parse_seeds
from benchmark.plan import Plan, RunRequest
from protocol.errors import BenchmarkError

from .conftest import results_at, run_cli, write_dataset

ARGS = ("--profile", "smoke", "--methods", "sasrec,gru4rec", "--seeds", "1,2",
        "--set", "max_users=40", "--set", "sasrec.epochs=2", "--set", "gru4rec.epochs=2",
        "--set", "scaling.enabled=false")


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    d = tmp_path_factory.mktemp("seeds")
    write_dataset(d / "data", n_users=60, n_items=30)
    r = run_cli("run", "toy", "--data-dir", d / "data", "--out", d / "out", *ARGS)
    assert r.returncode == 0, r.stderr[-3000:]
    return d, r


def _preds(folder):
    return [json.loads(line) for line in (folder / "predictions.jsonl").open()]


def test_each_seed_trains_every_method_on_the_same_users(two_seeds):
    d, r = two_seeds
    root = d / "out" / "toy" / "smoke"
    assert "2 at a time" in r.stderr                           # one queue of children
    for m in ("sasrec", "gru4rec"):
        p1, p2 = _preds(root / "seed-1" / m), _preds(root / "seed-2" / m)
        assert [x["user"] for x in p1] == [x["user"] for x in p2] and len(p1) == 40
        assert [x["topk"] for x in p1] != [x["topk"] for x in p2], m     # seeds differ
        man = json.loads((root / "seed-2" / m / "manifest.json").read_text())
        assert man["seed"] == 2
    # the 40 users are those of seed 1's sample (eval_seed), not seed 2's own sample
    want = Plan(RunRequest("toy", "smoke", ["sasrec"], d / "data", d / "x",
                           ["max_users=40", "seed=1"]))
    got = Plan(RunRequest("toy", "smoke", ["sasrec"], d / "data", d / "x", ["max_users=40"],
                          seeds=[1, 2], seed=2))
    own = Plan(RunRequest("toy", "smoke", ["sasrec"], d / "data", d / "x",
                          ["max_users=40", "seed=2"]))
    assert list(got.split.test.users) == list(want.split.test.users)
    assert list(own.split.test.users) != list(want.split.test.users)
    assert got.settings.seed == 2 and got.profile_dir.name == "seed-2"
    assert got.key("sasrec") != want.key("sasrec")
    t1 = (root / "seed-1" / "tables" / "table1.md").read_text()
    assert "toy (smoke, seed 1 profile)" in t1                  # a seed folder is not a dataset
    assert "best method on Toy" in (root / "seed-2" / "tables" / "claims.md").read_text()
    assert (root / "seed-2" / "report.md").is_file() and (root / "report.md").is_file()


def test_table1_over_seeds_is_mean_and_std_of_each_seed(two_seeds):
    d, _ = two_seeds
    root = d / "out" / "toy" / "smoke"
    text = (root / "tables" / "table1_seeds.md").read_text()
    for m, label in (("sasrec", "SASRec"), ("gru4rec", "GRU4Rec")):
        v = [json.loads((root / f"seed-{s}" / m / "metrics.json").read_text())["NDCG@10"]
             for s in (1, 2)]
        row = next(line for line in text.splitlines() if line.startswith(f"| {label} "))
        cell = row.split("|")[3].strip()                        # N@10
        assert cell == f"{np.mean(v):.4f} ± {np.std(v, ddof=1):.4f}"


def test_seed_reports_say_how_they_were_run(two_seeds):
    """A seed's report names the command that rewrites it and says its wall time covers every
    seed; rewriting the run's folder without --seeds is one line, writing nothing."""
    d, _ = two_seeds
    root = d / "out" / "toy" / "smoke"
    line = json.loads((root / "seed-1" / "run_log.jsonl").read_text().splitlines()[0])
    assert line["seeds"] == [1, 2] and line["failed"] == []
    report = (root / "seed-1" / "report.md").read_text()
    assert "--seeds <the run's seeds> --only-reports" in report and "2 seeds (1, 2)" in report
    before = sorted(p.name for p in (root / "tables").iterdir())
    r = run_cli("run", "toy", "--data-dir", d / "data", "--out", d / "out", "--profile", "smoke",
                "--only-reports")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: {root} holds a several-seed run (seed-1, seed-2): add --seeds 1,2 to rewrite "
        "its reports")
    assert sorted(p.name for p in (root / "tables").iterdir()) == before


def test_a_second_run_resumes_every_seed(two_seeds):
    d, _ = two_seeds
    r = run_cli("run", "toy", "--data-dir", d / "data", "--out", d / "out", *ARGS)
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("sasrec@seed-1", "gru4rec@seed-1", "sasrec@seed-2", "gru4rec@seed-2"):
        assert f"[run] {name}: results up to date, skipped" in r.stderr


def _seed_rows(root, hits):
    """Hand-written predictions: hits[(method, seed)] is the users' HR@10 hits (target first)."""
    n = len(next(iter(hits.values())))
    for (m, s), hit in hits.items():
        f = root / f"seed-{s}" / m
        f.mkdir(parents=True)
        rows = [{"user": f"u{i}", "target": "t", "topk": ["t"] + [f"x{j}" for j in range(49)]
                 if h else [f"x{j}" for j in range(50)]} for i, h in enumerate(hit)]
        (f / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (f / "metrics.json").write_text(json.dumps({k: float(hit.mean()) for k in (
            "NDCG@5", "NDCG@10", "NDCG@20", "HR@5", "HR@10", "HR@20")} | {"n_users": n}))
        (f / "manifest.json").write_text(json.dumps({"seed": s}))


def test_seed_pooled_comparisons_against_a_hand_computation(tmp_path):
    """Three seeds, LASAR and one baseline with hand-written predictions: the pooled difference
    is the mean of the per-seed differences, its interval the two-level bootstrap's, the
    t-interval over the seeds beside it; two seeds give no pooled verdict; users that differ
    between seeds or methods are one reason, not a number."""
    from reports.seeds import lasar_versus
    from reports.verdicts import judge
    root = tmp_path / "toy" / "cpu"
    n = 400
    rng = np.random.default_rng(0)
    hits = {(m, s): rng.random(n) < (0.30 if m == "lasar" else 0.10 + 0.01 * s)
            for m in ("lasar", "sasrec") for s in (1, 2, 3)}
    _seed_rows(root, hits)
    runs = lambda seeds: {s: results_at(root / f"seed-{s}", 2000) for s in seeds}  # noqa: E731
    cmp = {c["label"]: c for c in lasar_versus(runs((1, 2, 3)))}
    hr = cmp["LASAR - SASRec, HR@10"]
    per_seed = [hits[("lasar", s)].mean() - hits[("sasrec", s)].mean() for s in (1, 2, 3)]
    assert hr["per_seed"] == pytest.approx(per_seed) and hr["seeds"] == 3
    assert hr["diff"] == pytest.approx(np.mean(per_seed)) and hr["lo"] > 0
    assert hr["t_lo"] < hr["diff"] < hr["t_hi"]
    assert judge(list(cmp.values())) == "holds"
    assert judge(lasar_versus(runs((1, 2)))) == "inconclusive (too few seeds)"
    f = root / "seed-2" / "sasrec" / "predictions.jsonl"
    f.write_text(f.read_text().replace('"u0"', '"w0"'))
    said = lasar_versus(runs((1, 2, 3)))
    assert "seed 2: sasrec)" in said and "--set eval_seed=1" in said


@pytest.mark.parametrize("text", ["42,x", "42,42", "-1,2", ""])
def test_bad_seeds_are_one_line(text):
    with pytest.raises(BenchmarkError, match="--seeds"):
        parse_seeds(text)


def test_study_claims_pool_each_users_rows_over_seeds(tmp_path):
    """The alignment claim on three seeds' study rows: the pooled KL - none difference is the
    mean over seeds of the per-seed difference, from the two-level bootstrap; seeds that studied
    other users are one error naming the file."""
    from reports.claims import claims
    root = tmp_path / "beauty" / "cpu"
    rng = np.random.default_rng(3)
    n, ids = 500, [f"u{i}" for i in range(500)]
    hit = {}
    for s in (1, 2, 3):
        rows = {}
        for name, p in (("sft_align_kl", 0.5), ("sft_align_none", 0.1),
                        ("sft_align_cosine", 0.1), ("sft_align_mse", 0.1)):
            hit[(name, s)] = rng.random(n) < p
            rows[name] = {"ranks": [1 if h else 0 for h in hit[(name, s)]],
                          "NDCG@10": float(hit[(name, s)].mean()),
                          "HR@10": float(hit[(name, s)].mean())}
        f = root / f"seed-{s}" / "lasar"
        f.mkdir(parents=True)
        (f / "studies.json").write_text(json.dumps(
            {"eval_users": n, "eval_user_ids": ids, "rows": rows, "n_mode": "sample"}))
    runs = lambda: [results_at(root / f"seed-{s}", 2000) for s in (1, 2, 3)]   # noqa: E731
    align = next(c for c in claims(runs()) if c["id"] == "kl_only")
    assert align["verdict"] == "holds" and align["source"] == "Table 2"
    c = next(x for x in align["comparisons"] if x["label"] == "KL - none, HR@10")
    want = np.mean([(hit[("sft_align_kl", s)] + 0.0) - hit[("sft_align_none", s)]
                    for s in (1, 2, 3)])
    assert c["diff"] == pytest.approx(want) and c["seeds"] == 3
    bad = root / "seed-2" / "lasar" / "studies.json"
    bad.write_text(bad.read_text().replace('"u0"', '"v0"'))
    with pytest.raises(ValueError, match="seed-2/lasar/studies.json: studied other users"):
        claims(runs())
