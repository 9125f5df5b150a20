"""Unreadable caches (a file truncated or corrupted on disk) are detected and built again with
one logged line, never a traceback: the artifact mechanism, and each cache's own loader (SID
table, embeddings, teacher CoTs, segments, anchors, the converted backbone, checkpoints)."""
import json
import logging

import numpy as np
import pytest
import torch

from protocol.artifact import Artifact
from protocol.errors import BenchmarkError

from .conftest import tiny_qwen, write_dataset


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def _counting(value="v"):
    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "payload.json").write_text(json.dumps({"value": value}))
        return {"n": len(calls)}
    return build, calls


def _read(path, info):
    return json.loads((path / "payload.json").read_text())["value"]


def test_an_unreadable_payload_is_built_again_with_one_line(tmp_path, caplog):
    art = Artifact(tmp_path, "thing", {"a": 1})
    build, calls = _counting()
    assert art.get(build, _read) == "v" and len(calls) == 1
    _truncate(art.path / "payload.json")
    with caplog.at_level(logging.WARNING):
        assert art.get(build, _read) == "v"
    assert len(calls) == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "is unreadable (JSONDecodeError" in warnings[0].message
    assert "building it again" in warnings[0].message
    assert art.get(build, _read) == "v" and len(calls) == 2          # then reused


@pytest.mark.parametrize("continuable", [None, {"epochs": 3}])
def test_a_finished_artifact_drops_its_resume_checkpoint_unless_continuable(tmp_path,
                                                                             continuable):
    """A trained model's resume checkpoint (weights and AdamW: 7 GB at Qwen3-0.6B) goes once
    the artifact is finished; a continuable one (RecBole's epoch cap) keeps what it continues
    from; the payload stays either way."""
    from protocol.artifact import RESUME_CHECKPOINT

    def build(folder):
        for sub in (RESUME_CHECKPOINT, "best"):
            (folder / sub).mkdir()
            (folder / sub / "weights.bin").write_bytes(b"w")
        return {}
    art = Artifact(tmp_path, "sft", {"a": 1}, continuable=continuable, resumable=True)
    art.get(build)
    assert (art.path / "best" / "weights.bin").is_file() and art.done
    assert (art.path / RESUME_CHECKPOINT).exists() == bool(continuable)


def test_an_unreadable_done_json_is_built_again(tmp_path, caplog):
    art = Artifact(tmp_path, "thing", {"a": 1})
    build, calls = _counting()
    art.get(build, _read)
    _truncate(art.path / "done.json")
    with caplog.at_level(logging.WARNING):
        assert art.get(build, _read) == "v"
    assert len(calls) == 2 and "done.json is unreadable" in caplog.text


def test_a_loader_that_fails_on_a_fresh_build_raises_and_bad_input_is_not_retried(tmp_path):
    """Only a reused artifact is rebuilt when unreadable: a loader failing on what was just
    built is a bug, raised at once (no second build: training is not paid twice)."""
    art = Artifact(tmp_path, "thing", {"a": 1})
    build, calls = _counting()

    def broken(path, info):
        raise ValueError("a bug in the loader")
    with pytest.raises(ValueError, match="a bug in the loader"):
        art.get(build, broken)
    assert len(calls) == 1
    with pytest.raises(ValueError, match="a bug in the loader"):     # reused: rebuilt once,
        art.get(build, broken)                                        # then raised, no loop
    assert len(calls) == 2

    def bad_input(path, info):
        raise BenchmarkError("fix the file")
    with pytest.raises(BenchmarkError):
        art.get(build, bad_input)
    assert len(calls) == 2                                            # not rebuilt


def test_sid_table_and_embeddings_rebuilt_when_truncated(tmp_path, caplog):
    from protocol.sids import build_or_load
    from recdata import load_dataset

    from .test_sids import CFG
    write_dataset(tmp_path / "data", n_items=40)
    ds = load_dataset("toy", tmp_path / "data")
    cache = tmp_path / "cache"
    first = build_or_load(ds, CFG, cache)
    (sids_file,) = cache.glob("sids-*/sids.json")
    _truncate(sids_file)
    with caplog.at_level(logging.WARNING):
        again = build_or_load(ds, CFG, cache)
    assert np.array_equal(again.codes, first.codes)
    assert f"{sids_file.parent} is unreadable" in caplog.text
    (emb,) = cache.glob("embeddings-*/embeddings.npy")
    _truncate(emb, 0.9)
    for d in cache.glob("sids-*"):              # the table is built again from the embeddings
        d.joinpath("done.json").unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        third = build_or_load(ds, CFG, cache)
    assert np.array_equal(third.codes, first.codes)
    assert f"{emb.parent} is unreadable" in caplog.text


def test_teacher_cots_and_segments_rebuilt_when_truncated(tmp_path, caplog):
    from benchmark.plan import Plan, RunRequest
    from methods.lasar.pool import _segments, pool_examples
    from methods.lasar.teacher import cot_artifact, teacher_cots
    write_dataset(tmp_path / "data", n_users=20, n_items=30)
    plan = Plan(RunRequest("toy", "smoke", ["lasar"], tmp_path / "data", tmp_path / "out",
                           ["lasar.teacher.kind=template"]))
    ctx = plan.context("lasar")
    cfg = plan.method_cfgs["lasar"]
    examples = pool_examples(ctx.split.train, 12, ctx.seed)
    art = cot_artifact(ctx, examples, cfg.teacher)
    cots = teacher_cots(ctx, art, examples, cfg.teacher)
    lines = (art.path / "cots.jsonl").read_text().splitlines(keepends=True)
    (art.path / "cots.jsonl").write_text("".join(lines[:-3]))     # cut at a line boundary
    with caplog.at_level(logging.WARNING):
        assert teacher_cots(ctx, art, examples, cfg.teacher) == cots
    assert "9 CoTs, done.json says 12" in caplog.text
    seg_art, load = _segments(ctx, examples, cfg)
    segments, _, _ = load()
    _truncate(seg_art.path / "segments.json")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert load()[0] == segments
    assert f"{seg_art.path} is unreadable" in caplog.text


def test_anchor_and_backbone_loaders_refuse_truncated_files(tmp_path):
    from methods.lasar.anchors import Anchors, load_anchors, save_anchors
    from methods.lm.backbone import readable_model_folder
    from methods.lm.tokenizer import build_tokenizer
    save_anchors(Anchors(torch.randn(5, 8).half(), torch.tensor([0, 2, 5])), tmp_path / "a.pt")
    assert load_anchors(tmp_path / "a.pt").counts().tolist() == [2, 3]
    _truncate(tmp_path / "a.pt")
    with pytest.raises(Exception):
        load_anchors(tmp_path / "a.pt")
    tok = build_tokenizer(["a tent", "a bike"], vocab_size=300, n_codes=4)
    model = tiny_qwen(len(tok))
    model.save_pretrained(tmp_path / "m")
    assert readable_model_folder(tmp_path / "m") == tmp_path / "m"
    _truncate(next((tmp_path / "m").glob("*.safetensors")), 0.9)
    with pytest.raises(Exception, match="incomplete metadata|not fully covered"):
        readable_model_folder(tmp_path / "m")


@pytest.mark.parametrize("broken", ["trainer_state.pt", "model.safetensors"])
def test_an_unreadable_checkpoint_is_trained_again(tmp_path, caplog, broken):
    """resume_state: a checkpoint whose state or weights cannot be read is one logged line and
    removed, and the model keeps the weights it had (every file is read before it changes), so
    training starts again from the beginning exactly as a fresh run would."""
    from methods.lm.sft import resume_state, save_model
    from methods.lm.tokenizer import build_tokenizer
    tok = build_tokenizer(["a tent", "a bike"], vocab_size=300, n_codes=4)
    trained, fresh = tiny_qwen(len(tok), seed=1), tiny_qwen(len(tok), seed=2)
    tmp = save_model(trained, tok, tmp_path / "last")
    torch.save({"step": 6}, tmp / "trainer_state.pt")
    tmp.rename(tmp_path / "last")
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    model = tiny_qwen(len(tok), seed=2)
    assert resume_state(model, tmp_path / "last", "SFT") == {"step": 6}      # readable: loaded
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in model.state_dict().items())
    _truncate(tmp_path / "last" / broken, 0.6)
    with caplog.at_level(logging.WARNING):
        assert resume_state(fresh, tmp_path / "last", "SFT") is None
    assert "SFT checkpoint" in caplog.text and "is unreadable" in caplog.text
    assert "training again from the start" in caplog.text
    assert not (tmp_path / "last").exists()
    assert all(torch.equal(v, before[k]) for k, v in fresh.state_dict().items())
