"""End to end through the CLI: every registered method on generated data, and the smoke
profile on a few hundred users of real Sports data when ../shared/datasets is present."""
import json

import pytest

import methods

from .conftest import real_data_dir, run_cli, write_dataset
from .contract import check_method_folder, check_table_numbers


def test_every_registered_method_end_to_end(tmp_path):
    write_dataset(tmp_path / "data", n_users=80, n_items=60)
    names = methods.names()
    out = tmp_path / "results"
    sets = [a for m in names if "epochs" in methods.default_config(m)
            for a in ("--set", f"{m}.epochs=1")]
    r = run_cli("run", "toy", "--profile", "smoke", "--methods", ",".join(names),
                "--data-dir", tmp_path / "data", "--out", out, *sets)
    assert r.returncode == 0, r.stderr[-3000:]
    root = out / "toy" / "smoke"
    shown = {}
    for m in names:
        _, metrics, man = check_method_folder(root / m, tmp_path / "data" / "toy", 80)
        shown[man["display_name"]] = metrics
    check_table_numbers(root / "tables" / "table1.md", shown)
    assert "Not run (missing): LASAR" in (root / "tables" / "table1.md").read_text()
    assert (root / "tables" / "table1.tex").read_text().count(r"\toprule") == 1


@pytest.mark.skipif(real_data_dir() is None, reason="../shared/datasets not present")
def test_smoke_profile_on_real_sports(tmp_path):
    data = real_data_dir()
    out = tmp_path / "results"
    r = run_cli("run", "sports", "--profile", "smoke", "--data-dir", data, "--out", out)
    assert r.returncode == 0, r.stderr[-3000:]
    root = out / "sports" / "smoke"
    shown = {}
    for m in ("sasrec", "gru4rec"):
        rows, metrics, man = check_method_folder(root / m, data / "sports", 300)
        assert man["dataset"]["items"] == 18357 and man["dataset"]["users"] == 35598
        shown[man["display_name"]] = metrics
    check_table_numbers(root / "tables" / "table1.md", shown)
    before = (root / "sasrec" / "predictions.jsonl").read_text()
    r = run_cli("run", "sports", "--profile", "smoke", "--data-dir", data, "--out", out,
                "--methods", "sasrec")
    assert r.returncode == 0 and "up to date" in r.stderr
    assert (root / "sasrec" / "predictions.jsonl").read_text() == before


def test_data_stats_json(tmp_path):
    write_dataset(tmp_path / "data", n_users=10, n_items=30, min_len=5, max_len=5)
    r = run_cli("data", "stats", "toy", "--json", "--data-dir", tmp_path / "data")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"users": 10, "items": 30, "interactions": 50,
                                    "train_examples": 20, "valid_examples": 10,
                                    "test_examples": 10}


def test_sids_cli_json_and_cache(tmp_path):
    write_dataset(tmp_path / "data", n_users=10, n_items=30)
    args = ("sids", "toy", "--json", "--profile", "smoke", "--data-dir", tmp_path / "data",
            "--out", tmp_path / "results", "--set", "sids.codes=4")
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert set(rep) == {"items", "distinct_sids", "moved", "codes_per_level", "seconds"}
    assert rep["items"] == rep["distinct_sids"] == 30 and len(rep["codes_per_level"]) == 4
    assert max(rep["codes_per_level"]) <= 4          # 4 codes a level: collisions are certain
    assert rep["moved"] > 0
    assert list((tmp_path / "results" / "toy" / "_cache").glob("sids-*.json"))
    again = run_cli(*args)
    assert json.loads(again.stdout) == rep           # served from the cache, same table
