"""Every bad input stops before training with one line naming the file (and line), a non-zero
exit status, and nothing written under results/."""
import json

import pytest

from .conftest import run_cli, write_dataset


def _run(tmp_path, *extra):
    out = tmp_path / "results"
    r = run_cli("run", "toy", "--profile", "smoke", "--data-dir", tmp_path / "data",
                "--out", out, *extra)
    return r, out


def _one_line_error(r, *needles):
    assert r.returncode != 0
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ")
    for n in needles:
        assert n in lines[0], lines[0]


def _mutate(d, name, fn):
    p = d / name
    p.write_text(fn(p.read_text()))


def _mutate_bytes(d, name, k, fn):
    """Line k (0-based) of a file changed as bytes."""
    lines = (d / name).read_bytes().split(b"\n")
    lines[k] = fn(lines[k])
    (d / name).write_bytes(b"\n".join(lines))


CASES = {
    "missing sequences": (lambda d: (d / "sequences.txt").unlink(), ["sequences.txt", "missing"]),
    "empty sequences": (lambda d: (d / "sequences.txt").write_text(""), ["sequences.txt", "empty"]),
    "missing items": (lambda d: (d / "items.jsonl").unlink(), ["items.jsonl", "missing"]),
    "empty items": (lambda d: (d / "items.jsonl").write_text("\n"), ["items.jsonl", "empty"]),
    "malformed item line": (lambda d: _mutate(d, "items.jsonl",
                                              lambda t: t.replace("}\n", "\n", 1)),
                            ["items.jsonl:1:", "malformed JSON"]),
    "unknown item": (lambda d: _mutate(d, "sequences.txt",
                                       lambda t: t.replace("\n", " 999\n", 1)),
                     ["sequences.txt:1:", "'999'", "not in items.jsonl"]),
    "duplicate item id": (lambda d: _mutate(d, "items.jsonl",
                                            lambda t: t + t.splitlines()[2] + "\n"),
                          ["items.jsonl:41:", "duplicate item_id '3'", "line 3"]),
    "short user": (lambda d: _mutate(d, "sequences.txt", lambda t: t + "999 1 2\n"),
                   ["sequences.txt:61:", "2 interaction(s)", "at least 3"]),
    "latin-1 byte in items": (lambda d: _mutate_bytes(d, "items.jsonl", 2,
                                                      lambda l: l.replace(b"gear", b"g\xe9ar")),
                              ["items.jsonl:3:", "not UTF-8", "byte 0xe9"]),
    "binary sequences": (lambda d: (d / "sequences.txt").write_bytes(
        (d / "sequences.txt").read_bytes()[:40] + bytes(range(256))),
        ["sequences.txt:", "NUL byte", "binary"]),
    "bad published sids": (lambda d: (d / "published_sids.json").write_text(json.dumps(
        {str(i): ["<a_1>", "<b_2>", "<c_3>"] for i in range(1, 41)})),
        ["published_sids.json", "4 tokens"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_dataset_files(tmp_path, case):
    d = write_dataset(tmp_path / "data")
    mutate, needles = CASES[case]
    mutate(d)
    r, out = _run(tmp_path)
    _one_line_error(r, *needles)
    assert not out.exists()


@pytest.mark.parametrize("extra,needles", [
    (["--profile", "smok"], ["unknown profile 'smok'", "did you mean 'smoke'"]),
    (["--methods", "sasrek"], ["unknown method 'sasrek'", "did you mean 'sasrec'"]),
    (["--set", "sead=3"], ["unknown configuration key 'sead'", "did you mean 'seed'"]),
    (["--set", "sasrec.epoch=3"], ["unknown configuration key 'epoch'", "did you mean 'epochs'"]),
    (["--set", "seed=abc"], ["'seed' must be int"]),
])
def test_bad_names_and_keys(tmp_path, extra, needles):
    write_dataset(tmp_path / "data")
    r, out = _run(tmp_path, *extra)
    _one_line_error(r, *needles)
    assert not out.exists()


@pytest.mark.parametrize("extra,needles", [
    (["--set", "seed=-1"], ["--set seed=-1:", "'seed' = -1", "in [0, 4294967295]"]),
    (["--set", "topk=0"], ["--set topk=0:", "'topk' = 0", ">= 1"]),
    (["--set", "topk=41"], ["--set topk=41:", "'topk' = 41", "[1, 40]", "40 items"]),
    (["--set", "lm.hidden_size=7"], ["--set lm.hidden_size=7:", "'lm.hidden_size' = 7",
                                     "multiple of num_heads (4)"]),
    (["--set", "minionerec.sft.lr=0"], ["'minionerec.sft.lr' = 0.0", "> 0"]),
    (["--set", "sasrec.hidden_dropout_prob=1.5"], ["'sasrec.hidden_dropout_prob' = 1.5",
                                                   "in [0, 1]"]),
    (["--set", "lasar.rl.ema_decay=-0.1"], ["'lasar.rl.ema_decay' = -0.1", "in [0, 1]"]),
    (["--set", "minionerec.rl.group_size=41"], ["--set minionerec.rl.group_size=41:",
                                                "at most the catalog (40 items)"]),
    (["--set", "lasar.rl.group_size=1"], ["'lasar.rl.group_size' = 1", "an integer >= 2"]),
    (["--set", "sids.codes=1"], ["'sids.codes' = 1", "an integer >= 2"]),
    (["--set", "lasar.inference.force_n=9"], ["'lasar.inference.force_n' = 9", "[1, 8]"]),
    (["--set", "lasar.studies.force_n=[1, 0]"], ["'lasar.studies.force_n[1]' = 0", "[1, 8]"]),
    (["--set", "jobs=0"], ["'jobs' = 0", ">= 1"]),
])
def test_values_out_of_range(tmp_path, extra, needles):
    """A value out of range is one line naming the key, the value, what is allowed and the
    --set it came from (tests/test_config.py::test_a_bad_value_names_the_file_it_came_from
    covers the files), before any work (toy: 40 items)."""
    write_dataset(tmp_path / "data")
    r, out = _run(tmp_path, "--methods", "sasrec,minionerec,lasar", *extra)
    _one_line_error(r, "out of range", *needles)
    assert not out.exists()


@pytest.mark.parametrize("extra,needles", [
    (["--set", "sids.embedder=/no/such"], ["--set sids.embedder=/no/such:",
                                           "not a local sentence-transformers folder"]),
    (["--set", "lasar.segmentation.embedder=/no/such"], ["'lasar.segmentation.embedder'"]),
    (["--set", "lasar.teacher.kind=import"], ["methods/configs/lasar.yaml:",
                                              "'lasar.teacher.import_path' = None: no such file"]),
    (["--set", "cot_gream.teacher.kind=local", "--set", "cot_gream.teacher.local_model=/no/such"],
     ["--set cot_gream.teacher.local_model=/no/such:", "no config.json in the folder /no/such"]),
])
def test_settings_that_name_missing_files(tmp_path, extra, needles):
    """Embedders and teachers are checked like the backbone: before any work, one line."""
    write_dataset(tmp_path / "data")
    r, out = _run(tmp_path, "--methods", "lasar,cot_gream", *extra)
    _one_line_error(r, *needles)
    assert not out.exists()


def test_unknown_and_missing_dataset(tmp_path):
    (tmp_path / "data").mkdir()
    r = run_cli("data", "stats", "sprots", "--data-dir", tmp_path / "data")
    _one_line_error(r, "unknown dataset 'sprots'", "did you mean 'sports'")
    r = run_cli("data", "stats", "sports", "--data-dir", tmp_path / "data")
    _one_line_error(r, "dataset 'sports' not found", str(tmp_path / "data" / "sports"),
                    "--data-dir")


@pytest.mark.parametrize("extra,needles", [
    (["--set", "scaling.enabled=true", "--set", "scaling.lm={}", "--profile", "cpu-full"],
     ["scaling.lm names no larger backbone"]),
    (["--set", "scaling.lm={backbone: /no/such/folder, lora: true}", "--profile", "cpu-full",
      "--set", "scaling.enabled=true"], ["/no/such/folder"]),
])
def test_table5_backbone_checked_before_training(tmp_path, extra, needles):
    write_dataset(tmp_path / "data", n_users=20, n_items=30)
    out = tmp_path / "results"
    r = run_cli("run", "toy", "--methods", "minionerec", "--data-dir", tmp_path / "data",
                "--out", out, *extra)
    _one_line_error(r, *needles)
    assert not out.exists()


def _folder_without_tokenizer(tmp_path):
    from .conftest import save_tiny_qwen_folder
    f = save_tiny_qwen_folder(tmp_path / "no-tok", ["gear"])
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (f / name).unlink(missing_ok=True)
    return f


def _folder_not_causal(tmp_path):
    f = tmp_path / "bert"
    f.mkdir()
    (f / "config.json").write_text(json.dumps({"model_type": "bert",
                                               "architectures": ["BertModel"]}))
    (f / "tokenizer.json").write_text("{}")
    return f


@pytest.mark.parametrize("case", ["paper without --backbone", "random under smol",
                                  "no tokenizer", "not a causal LM", "LoRA on random",
                                  "smol without a GPU"])
def test_real_backbone_bad_input(tmp_path, case):
    """Real backbones: each bad input stops before any work with one line."""
    import torch
    write_dataset(tmp_path / "data", n_users=20, n_items=30)
    args = {"paper without --backbone": (["--profile", "paper"], ["profile 'paper' needs a "
                                         "pretrained backbone", "--backbone PATH"]),
            "random under smol": (["--profile", "smol", "--backbone", "random", "--set",
                                   "device=cpu"], ["profile 'smol' needs a pretrained"]),
            "no tokenizer": (["--profile", "smoke", "--backbone",
                              _folder_without_tokenizer(tmp_path)], ["no tokenizer in the "
                                                                     "folder"]),
            "not a causal LM": (["--profile", "smoke", "--backbone",
                                 _folder_not_causal(tmp_path)],
                                ["not a causal language model", "BertModel"]),
            "LoRA on random": (["--profile", "smoke", "--set", "lm.lora=true"],
                               ["--set lm.lora=true:", "'lm.lora' = True is out of range",
                                "random backbone"]),
            "smol without a GPU": (["--profile", "smol"], ["runs on a CUDA GPU and none is "
                                                           "visible", "--set device=cpu"])}
    extra, needles = args[case]
    if case == "smol without a GPU" and torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    out = tmp_path / "results"
    r = run_cli("run", "toy", "--methods", "minionerec", "--data-dir", tmp_path / "data",
                "--out", out, *map(str, extra))
    _one_line_error(r, *needles)
    assert not out.exists()
