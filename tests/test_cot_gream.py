"""Explicit CoT (GREAM): the CoT-generation prefix hook (stops at </think>, EOS, a SID token or
its cap; finished rows masked), its cached path against recomputing the whole prompt, and the
CoT SFT examples."""
import numpy as np
import pytest
import torch

from protocol.beam import SidTrie, recommend
from methods.cot_gream import CotGenerator, cot_tasks

from .conftest import tiny_qwen
from .test_beam import random_catalog

LEVELS, N_CODES, V = 4, 6, 10 + 4 * 6 + 6
SID_IDS = torch.arange(10, 10 + LEVELS * N_CODES).reshape(LEVELS, N_CODES)
THINK, END, EOS, PAD = 34, 35, 1, 0


class Tok:
    pad_token_id, eos_token_id = PAD, EOS

    def convert_tokens_to_ids(self, t):
        return {"<think>": THINK, "</think>": END}[t]


class ScriptedStepper:
    """Stands in for KVStepper: row r's greedy token at call c is script[r][c]; records what
    was fed and which positions were attended."""

    def __init__(self, script):
        self.script, self.calls = script, 0
        self.mask = torch.ones((len(script), 3), dtype=torch.long)
        self.fed, self.attend = [], []

    def forward(self, input_ids=None, attend=None, **kw):
        self.fed.append(input_ids.tolist())
        self.attend.append(None if attend is None else attend.tolist())
        logits = torch.zeros((len(self.script), 1, V))
        for r, s in enumerate(self.script):
            tok = s[min(self.calls, len(s) - 1)]
            logits[r, 0, tok] = 5.0
            logits[r, 0, 2] = 1.0 + self.calls           # marks which call made the logits
        self.calls += 1

        class Out:
            pass
        out = Out()
        out.logits = logits
        return out


def test_generator_stops_at_end_eos_sid_or_cap():
    # row 0: two words then </think>; row 1: never stops (cap 4); row 2: a SID token first;
    # row 3: EOS after one word
    script = [[5, 6, END], [7] * 10, [int(SID_IDS[0, 3])], [8, EOS]]
    st = ScriptedStepper(script)
    gen = CotGenerator(Tok(), V, SID_IDS, max_new_tokens=4, device="cpu")
    first = gen(st, None)
    assert gen.lengths.tolist() == [2, 4, 0, 1]
    assert gen.tokens[0, :2].tolist() == [5, 6] and gen.tokens[1].tolist() == [7] * 4
    assert st.fed[0] == [THINK] * 4                                  # <think> for every row
    # the token fed after its reasoning is </think> for every row (forced at cap / SID / EOS)
    fed = np.array(st.fed[1:])                                       # (calls, rows)
    for r, n in enumerate(gen.lengths.tolist()):
        assert fed[n, r] == END
        assert all(fed[c, r] == PAD for c in range(n + 1, len(fed)))  # finished rows: padding
        assert all(st.attend[1 + c][r] is False for c in range(n + 1, len(fed)))
    # each row's first-SID log-probs come from the call that fed its </think>
    for r, n in enumerate(gen.lengths.tolist()):
        marker = torch.exp(first[r, 2]) / torch.exp(first[r]).sum()
        want = torch.zeros(V)
        tok = script[r][min(n + 1, len(script[r]) - 1)]
        want[tok], want[2] = 5.0, 1.0 + (n + 1)
        torch.testing.assert_close(first[r], torch.log_softmax(want, -1))
        assert marker > 0
    assert len(st.fed) == 1 + 5                # <think> + at most cap + 1 steps


def _prompts():
    prompts = [[3, 5, 7, 2], [4, 1], [8, 8, 9, 1, 2, 3], [6, 2, 2]]
    T = max(map(len, prompts))
    ids = torch.tensor([[PAD] * (T - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (T - len(p)) + [1] * len(p) for p in prompts])
    return prompts, ids, mask


def test_cot_generation_equals_recomputing_the_full_prompt():
    """Generation on the shared cache (finished rows masked out) gives the same reasoning,
    items and scores as beam search on [prompt, <think>, reasoning, </think>] from scratch;
    rows stop at the cap; every answer is a catalog item."""
    model = tiny_qwen(V, seed=0, sharpen=10.0)
    codes = random_catalog(40, LEVELS, N_CODES, seed=1)
    trie = SidTrie(codes, N_CODES)
    prompts, ids, mask = _prompts()
    cap = 6
    gen = CotGenerator(Tok(), V, SID_IDS, cap, "cpu")
    # this random model's greedy text: rows 2 and 3 produce token 17 early, rows 0 and 1 never
    # in 6 tokens; stopping on it makes rows finish at different times
    gen.stop[:] = False
    gen.stop[[END, EOS, 17]] = True
    res = recommend(model, ids, mask, trie, SID_IDS, width=8, k=8, prefix_hook=gen)
    lengths = gen.lengths.tolist()
    assert lengths == [cap, cap, 1, 0]                           # cap, and early stops
    assert (gen.lengths <= cap).all()
    assert ((res.items >= 0) & (res.items < len(codes))).all()    # always valid items
    for b, p in enumerate(prompts):
        full = p + [THINK] + gen.tokens[b, :lengths[b]].tolist() + [END]
        one = recommend(model, torch.tensor([full]), torch.ones((1, len(full)), dtype=torch.long),
                        trie, SID_IDS, width=8, k=8)
        assert res.items[b].tolist() == one.items[0].tolist()
        torch.testing.assert_close(res.scores[b], one.scores[0], rtol=1e-4, atol=1e-4)


def test_cot_tasks_layout():
    class Codec:
        def seqrec(self, examples):
            from methods.lm.tasks import Encoded
            return Encoded("seqrec", [9, 9], [[1, 2], [3]], [[40, 41, 42, 43, EOS]] * 2)

        def enc(self, text):
            return [ord(c) % 7 + 50 for c in text]
    tasks, lens = cot_tasks(Codec(), None, ["abcdef", "ab"], THINK, END, 4)
    cot, direct = tasks
    assert cot.task == "cot" and direct.task == "seqrec"
    assert cot.head == direct.head and cot.suffixes == direct.suffixes
    assert cot.answers[0] == [THINK] + Codec().enc("abcd") + [END, 40, 41, 42, 43, EOS]
    assert cot.answers[1] == [THINK] + Codec().enc("ab") + [END, 40, 41, 42, 43, EOS]
    assert lens.tolist() == [6, 2]
    only, _ = cot_tasks(Codec(), None, ["a", "b"], THINK, END, 4, direct=False)
    assert [t.task for t in only] == ["cot"]


def test_bench_cot_json(tmp_path):
    """`bench cot`: the four decoders and LatentR3's on the same users, each timed pass in a
    fresh process of its own (the same outputs every pass); JSON and file. `bench lasar` then
    times LASAR and LatentR3 against plain decoding."""
    import json

    from .conftest import run_cli, write_dataset
    write_dataset(tmp_path / "data", n_users=40, n_items=30)
    r = run_cli("bench", "cot", "toy", "--profile", "smoke", "--users", "12", "--json",
                "--repeats", "2", "--data-dir", tmp_path / "data", "--out", tmp_path / "results",
                "--set", "lasar.rl.enabled=false", "--set", "minionerec.sft.epochs=1")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["users"] == 12 and len(res["test_user_ids"]) == 12
    assert res["fresh_processes"] and res["outputs_equal"] and res["repeats"] == 2
    assert all(len(v) == 2 for v in res["seconds"].values())
    passes = sorted((tmp_path / "results" / "toy" / "smoke" / "_work").glob("bench-cot-*/pass-*"))
    assert [p.name for p in passes] == ["pass-0.json", "pass-1.json"]
    one, two = (json.loads(p.read_text()) for p in passes)
    assert one["metrics"] == two["metrics"] == res["metrics"] and one["processes"] == 1
    assert set(res["ms_per_user"]) == {"plain", "lasar", "cot_direct", "cot_generation",
                                       "latentr3"}
    assert res["latentr3_over_plain"] == pytest.approx(
        res["ms_per_user"]["latentr3"] / res["ms_per_user"]["plain"], rel=0.02, abs=2e-3)
    assert all(v > 0 for v in res["ms_per_user"].values())
    assert res["cot_generation_over_lasar"] == pytest.approx(
        res["ms_per_user"]["cot_generation"] / res["ms_per_user"]["lasar"], rel=0.02, abs=2e-3)
    assert all(m["n_users"] == 12 for m in res["metrics"].values())
    saved = json.loads((tmp_path / "results" / "toy" / "smoke" / "bench" / "cot.json").read_text())
    assert saved["ms_per_user"] == res["ms_per_user"]
    # `bench lasar` on the same folder reuses the trained models (nothing is trained again)
    r = run_cli("bench", "lasar", "toy", "--profile", "smoke", "--users", "12", "--repeats", "2",
                "--json", "--data-dir", tmp_path / "data", "--out", tmp_path / "results",
                "--set", "lasar.rl.enabled=false", "--set", "minionerec.sft.epochs=1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "SFT step" not in r.stderr and "reusing" in r.stderr
    lb = json.loads(r.stdout.strip().splitlines()[-1])
    assert lb["users"] == 12 and len(lb["plain_seconds"]) == len(lb["lasar_seconds"]) == 2
    assert lb["lasar_over_plain"] == pytest.approx(
        lb["lasar_ms_per_user"] / lb["plain_ms_per_user"], rel=0.02, abs=2e-3)
    assert len(lb["latentr3_seconds"]) == 2 and lb["latentr3_over_plain"] == pytest.approx(
        lb["latentr3_ms_per_user"] / lb["plain_ms_per_user"], rel=0.02, abs=2e-3)
