"""`bench sft` (methods/lm/bench/sft.py): its counts against counts made here, a step that
learns, the presets' shapes against the published parameter counts. No timing is asserted."""
import json
import types

import numpy as np
import pytest
import torch

from .conftest import run_cli, write_dataset


def _args(**kw):
    a = dict(device="cpu", dtype=None, batch=4, items=200, tokenizer="bpe", preset="tiny",
             lr=5e-4, threads=None, warmup=1, repeats=1, peak_flops=None, epoch_of=None)
    return types.SimpleNamespace(**{**a, **kw})


def _full_rows(p):
    """Each example's whole prompt + answer as token ids, tokenized here from the prompt text
    (not from Codec's pieces): the rows the bench's batch must stand for."""
    from protocol.prompt import rec_prompt
    from methods.lm.tokenizer import sid_tokens
    names = np.array(sid_tokens(4, 256)).reshape(4, 256)
    sid = lambda i: "".join(names[l, c] for l, c in enumerate(p.codes[i]))
    rows = []
    for h, t in zip(p.examples.histories(), p.examples.targets):
        prompt = p.tok(rec_prompt([sid(i) for i in h]), add_special_tokens=False)["input_ids"]
        answer = p.tok(sid(t), add_special_tokens=False)["input_ids"] + [p.tok.eos_token_id]
        rows.append((prompt, answer))
    return rows


def _tiny_parameters(vocab):
    """Qwen3 tiny preset (hidden 32, intermediate 64, 1 layer, 4 heads, 2 kv heads, head dim
    8, tied embeddings), counted by hand."""
    d, inter, heads, kv, hd = 32, 64, 4, 2, 8
    layer = d * heads * hd * 2 + d * kv * hd * 2 + 2 * hd + 3 * d * inter + 2 * d
    return vocab * d + layer + d


def test_bench_sft_json_counts(tmp_path):
    from methods.lm.bench.synthetic import prompts
    from recdata import load_dataset, make_split
    write_dataset(tmp_path / "data", n_users=12, n_items=15)
    r = run_cli("bench", "sft", "--preset", "tiny", "--json", "--batch", "4", "--items", "200",
                "--repeats", "2", "--epoch-of", "toy", "--data-dir", tmp_path / "data",
                "--profile", "smoke")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)                     # one JSON object, nothing else on stdout
    for key in ("tokens_per_s", "samples_per_s", "seconds_per_step", "mfu", "parameters",
                "tokens_per_step", "device", "preset", "dtype", "batch", "peak_flops"):
        assert key in res
    assert res["device"] == "cpu" and res["dtype"] == "float32"
    assert res["mfu"] is None and res["peak_flops"] is None
    assert res["tokens_per_s"] > 0 and res["batch"] == 4

    p = prompts(4, 200, "bpe", with_answers=True)    # the bench's batch (fixed seed)
    rows = _full_rows(p)
    assert all(len(a) == 5 for _, a in rows)         # 4 SID tokens + eos
    unshared = sum(len(q) + len(a) for q, a in rows)
    assert res["unshared_tokens_per_step"] == unshared
    head = res["head_tokens"]
    assert all(q[:head] == p.batch.head.tolist() for q, _ in rows)
    # the head runs once for the batch; every other token once per row
    assert res["tokens_per_step"] == unshared - (len(rows) - 1) * head
    assert res["answer_tokens_per_step"] == 5 * len(rows)
    assert res["parameters"] == _tiny_parameters(res["vocab"]) == _tiny_parameters(len(p.tok))
    assert len(res["losses"]) == 3 and len(res["step_seconds"]) == 2

    ep = res["epoch"]                                 # --epoch-of: counted, not timed
    ds = load_dataset("toy", tmp_path / "data")
    assert ep["tasks"]["seqrec"]["examples"] == len(make_split(ds, 20).train)
    assert set(ep["tasks"]) == {"seqrec", "item2sid", "sid2item"}
    assert ep["tokens"] <= ep["positions"]
    shared = sum((o["examples"] - o["micro_batches"]) * o["head_tokens"]
                 for o in ep["tasks"].values())
    assert ep["unshared_tokens"] == pytest.approx(ep["tokens"] + shared)


def test_an_sft_step_learns_on_answer_tokens_only():
    """The bench's step lowers the answer-token loss on its batch, computed here with whole
    unpadded prompts and no shared head; its reported loss is that loss (not one over prompt
    tokens). A step that does not update the weights fails."""
    from methods.lm.bench.sft import setup, sft_step
    model, opt, batch, autocast, dtype, p = setup(_args())
    rows = _full_rows(p)

    def answer_loss():
        with torch.no_grad():
            tot, n = 0.0, 0
            for q, a in rows:
                ids = torch.tensor([q + a])
                logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
                for k, tok in enumerate(a):
                    tot -= float(logp[len(q) - 1 + k, tok])
                    n += 1
            return tot / n

    before = [w.detach().clone() for w in model.parameters()]
    l0 = answer_loss()
    reported = sft_step(model, opt, batch, autocast)
    assert reported == pytest.approx(l0, rel=1e-4)
    assert any(not torch.equal(b, w) for b, w in zip(before, model.parameters()))
    for _ in range(4):
        sft_step(model, opt, batch, autocast)
    assert answer_loss() < l0 - 0.05


@pytest.mark.parametrize("preset,arch,published", [
    ("smollm2", "LlamaForCausalLM", 134_515_008),     # SmolLM2-135M, vocab 49,152
    ("qwen3-0.6b", "Qwen3ForCausalLM", 596_049_920),  # Qwen3-0.6B, vocab 151,936
])
def test_presets_have_the_published_shapes(preset, arch, published):
    """Built on the meta device (no memory); the 1,024 SID rows come on top of the
    published count."""
    from methods.lm.bench import PRESETS
    from methods.lm.bench.synthetic import random_model
    with torch.device("meta"):
        model = random_model(preset, 0, "meta", torch.float32)
    assert type(model).__name__ == arch
    n = sum(w.numel() for w in model.parameters())
    assert n == published + 1024 * PRESETS[preset].hidden


def test_bench_text_names_the_architecture():
    r = run_cli("bench", "beam", "--prompts", "2", "--items", "200", "--width", "4",
                "--preset", "tiny", "--repeats", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "-parameter Qwen3 (tiny" in r.stdout and "speedup vs generate" in r.stdout
    r = run_cli("bench", "sft", "--preset", "tiny", "--batch", "2", "--items", "200",
                "--repeats", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "-parameter Qwen3 (tiny" in r.stdout and "MFU                   n/a (a CPU)" in r.stdout
