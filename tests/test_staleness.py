"""What makes results stale: a method's results key (Plan.key, recorded in its manifest) and the
artifacts it trains change with exactly what they are produced from. Plans are built in
process on a tiny dataset (no training); one CLI rerun checks that an unchanged key skips."""
import shutil

import pytest

import methods
from benchmark.plan import Plan, RunRequest

from .conftest import run_cli, write_dataset

ALL = methods.names()
GENERATIVE = {m for m in ALL if methods.spec(m).kind == "generative"}
DISCRIMINATIVE = set(ALL) - GENERATIVE


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("stale")
    write_dataset(d / "data", n_users=12, n_items=20)
    return d


def _plan(data, *sets, data_dir=None):
    return Plan(RunRequest("toy", "smoke", ALL, data_dir or data / "data", data / "out",
                           list(sets)))


def _keys(plan):
    return {m: plan.key(m) for m in ALL}


def _changed(data, *sets, data_dir=None):
    """The methods whose results key `sets` change."""
    base, new = _keys(_plan(data)), _keys(_plan(data, *sets, data_dir=data_dir))
    return {m for m in ALL if base[m] != new[m]}


def _stage1_key(plan, method):
    """The key of the Stage-1 (MiniOneRec SFT) artifact `method` trains on or reuses."""
    from methods.minionerec import MiniOneRec
    ctx = plan.context(method)
    return MiniOneRec.of(ctx).sft_artifact(ctx).key


def test_a_stage1_setting_makes_its_reusers_stale(data):
    """LASAR, Explicit CoT and LatentR3 start from MiniOneRec's SFT model (MiniOneRec.stage1):
    its settings are in their keys, and the Stage-1 artifact they load is a different one."""
    reusers = ("lasar", "cot_gream", "latentr3")
    assert {methods.spec(m).depends_on for m in reusers} == {("minionerec",)}
    assert _changed(data, "minionerec.sft.lr=1.0e-3") == {"minionerec", *reusers}
    assert _changed(data, "minionerec.tasks=[seqrec]") == {"minionerec", *reusers}
    base, new = _plan(data), _plan(data, "minionerec.sft.lr=1.0e-3")
    shared = {_stage1_key(base, m) for m in ("minionerec",) + reusers}
    assert len(shared) == 1                                   # one Stage 1 for all of them
    assert ({_stage1_key(new, m) for m in reusers}
            == {_stage1_key(new, "minionerec")} != shared)          # trained again, shared again
    # a reuser's own settings leave Stage 1 (and the other methods) alone
    assert _changed(data, "lasar.stage2.lr=2.0e-3") == {"lasar"}
    assert _changed(data, "latentr3.rl.noise_std=1.0") == {"latentr3"}
    assert _changed(data, "latentr3.init=backbone") == {"latentr3"}
    assert _stage1_key(_plan(data, "lasar.stage2.lr=2.0e-3"), "lasar") in shared


@pytest.mark.parametrize("setting,affected", [
    ("sids.codes=32", GENERATIVE),
    ("sids.levels=3", GENERATIVE),
    ("lm.hidden_size=96", GENERATIVE),
    ("lm.dtype=bfloat16", GENERATIVE),
    ("history_len=10", set(ALL)),
    ("seed=7", set(ALL)),
    ("eval.ks=[5, 10]", set(ALL)),
    # what steers the run, not its results
    ("threads=2", set()),
    ("jobs=1", set()),
    ("bench_cot.users=7", set()),
    ("scaling.enabled=false", set()),
    ("enabled=[sasrec]", set()),
    ("eval.bootstrap_resamples=50", set()),
    # another method's settings
    ("sasrec.epochs=9", {"sasrec"}),
    ("lcrec.sft.lr=1.0e-3", {"lcrec"}),
    # MiniOneRec's RL and ranking: LASAR and Explicit CoT read its SFT model only
    ("minionerec.rl.lr=2.0e-5", {"minionerec"}),
    ("minionerec.rl.enabled=false", {"minionerec"}),
    ("minionerec.eval_batch=8", {"minionerec"}),
    ("rearec.reason_steps=3", {"rearec"}),
    ("cot_gream.sft.epochs=3", {"cot_gream"}),
], ids=lambda v: v if isinstance(v, str) else "")
def test_each_setting_keys_exactly_the_methods_that_read_it(data, setting, affected):
    """SID and backbone settings key the generative methods only (SASRec, GRU4Rec and ReaRec
    never read them); the split, seed and metrics key every method; orchestration keys none."""
    assert _changed(data, setting) == affected


def test_the_data_files_key_every_method_wherever_they_live(data):
    """A changed item text makes every method's results stale (the files' fingerprint); the
    same files in another folder do not."""
    moved = data / "moved"
    shutil.copytree(data / "data", moved)
    assert _changed(data, data_dir=moved) == set()
    items = moved / "toy" / "items.jsonl"
    items.write_text(items.read_text().replace("gear model 3", "gear model 33", 1))
    assert _changed(data, data_dir=moved) == set(ALL)


def test_a_rerun_with_an_orchestration_change_is_up_to_date(tmp_path):
    """`--set threads=2` after a run with threads=1 trains nothing; a changed training setting
    trains again."""
    write_dataset(tmp_path / "data", n_users=20, n_items=20)
    args = ("run", "toy", "--profile", "smoke", "--methods", "gru4rec", "--data-dir",
            tmp_path / "data", "--out", tmp_path / "out", "--set", "gru4rec.epochs=1")
    first = run_cli(*args, "--set", "threads=1")
    assert first.returncode == 0, first.stderr[-3000:]
    pred = tmp_path / "out" / "toy" / "smoke" / "gru4rec" / "predictions.jsonl"
    stamp = pred.stat().st_mtime_ns
    again = run_cli(*args, "--set", "threads=2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "gru4rec: results up to date" in again.stderr and "training on" not in again.stderr
    assert pred.stat().st_mtime_ns == stamp
    changed = run_cli(*args, "--set", "threads=2", "--set", "gru4rec.learning_rate=0.002")
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert "up to date" not in changed.stderr and "gru4rec: training on" in changed.stderr


def test_a_new_teacher_template_or_segmentation_rule_makes_lasar_and_cot_stale(data,
                                                                               monkeypatch):
    """Code versions the configuration does not name (the template teacher's, the
    segmentation rule's) are in the results key: bumping one makes exactly the methods that
    read it stale, not only their pool artifacts."""
    import methods.lasar.segment as segment
    import methods.lasar.teacher as teacher
    base = _keys(_plan(data))
    monkeypatch.setattr(segment, "SEGMENTATION_VERSION", 999)
    seg = _keys(_plan(data))
    assert {m for m in ALL if seg[m] != base[m]} == {"lasar"}
    monkeypatch.setattr(teacher, "TEMPLATE_VERSION", 999)
    tpl = _keys(_plan(data))
    assert {m for m in ALL if tpl[m] != seg[m]} == {"lasar", "cot_gream"}
