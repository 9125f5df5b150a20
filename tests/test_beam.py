"""The constrained beam search against exhaustive scoring of every catalog item."""
import numpy as np
import pytest
import torch

from protocol.beam import SidTrie, constrained_beam_search, recommend

from .conftest import tiny_qwen


def random_catalog(n_items, levels, n_codes, seed):
    rng = np.random.default_rng(seed)
    seen = set()
    while len(seen) < n_items:
        seen.add(tuple(rng.integers(0, n_codes, levels).tolist()))
    return np.array(sorted(seen))


def test_trie_children():
    codes = np.array([[0, 1], [0, 2], [1, 0]])
    t = SidTrie(codes, 3)
    assert t.children[0].tolist() == [[0, 1, -1]]
    assert t.children[1].tolist() == [[-1, 0, 1], [2, -1, -1]]
    with pytest.raises(ValueError):
        SidTrie(np.array([[0, 1], [0, 1]]), 3)


def brute_force(model, prompt, codes, sid_ids):
    """Joint log-prob of every item: one full forward per item, no cache."""
    scores = []
    for row in codes:
        seq = torch.tensor([prompt + [int(sid_ids[l, c]) for l, c in enumerate(row)]])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=seq).logits[0].float(), -1)
        L = len(prompt)
        scores.append(sum(float(logp[L - 1 + l, seq[0, L + l]]) for l in range(len(row))))
    return np.array(scores)


@pytest.mark.parametrize("n_items,width", [(60, 10), (25, 50)])
def test_topk_equals_exhaustive_scoring(n_items, width):
    levels, n_codes = 4, 6
    sid_ids = torch.arange(10, 10 + levels * n_codes).reshape(levels, n_codes)
    model = tiny_qwen(vocab=10 + levels * n_codes + 6)
    codes = random_catalog(n_items, levels, n_codes, seed=n_items)
    trie = SidTrie(codes, n_codes)
    prompts = [[3, 5, 7, 2], [4, 1], [8, 8, 9, 1, 2, 3]]            # different lengths
    T = max(map(len, prompts))
    ids = torch.tensor([[0] * (T - len(p)) + p for p in prompts])   # left padding
    mask = torch.tensor([[0] * (T - len(p)) + [1] * len(p) for p in prompts])
    k = min(width, n_items)
    res = recommend(model, ids, mask, trie, sid_ids, width=width, k=k)
    for b, p in enumerate(prompts):
        exact = brute_force(model, p, codes, sid_ids.numpy())
        want = np.argsort(-exact, kind="stable")[:k]
        if width >= n_items:               # a beam as wide as the catalog is exhaustive
            assert res.items[b].tolist() == want.tolist()
        else:                              # beam search: found items carry exact scores
            assert res.items[b, 0].item() == want[0]
        got = res.items[b].numpy()
        np.testing.assert_allclose(res.scores[b].numpy(), exact[got], rtol=1e-4, atol=1e-4)
        assert (np.diff(res.scores[b].numpy()) <= 1e-6).all()   # best first
        assert len(set(got.tolist())) == k


def test_fewer_items_than_beams_pads_with_minus_one():
    codes = np.array([[0, 0], [1, 2], [1, 3]])
    trie = SidTrie(codes, 4)
    first = torch.log_softmax(torch.randn(2, 12), -1)

    def step(tokens, parent):
        return torch.log_softmax(torch.randn(len(tokens), 12), -1)
    sid = torch.arange(4, 12).reshape(2, 4)
    res = constrained_beam_search(first, step, trie, sid, width=5)
    for row in res.items.tolist():
        assert sorted(row[:3]) == [0, 1, 2] and row[3:] == [-1, -1]


def test_same_result_as_hf_generate_with_a_prefix_trie():
    """Two independent implementations of the same search: HF beam search with a Python
    prefix_allowed_tokens_fn trie and ours must agree on items and scores."""
    from methods.lm.bench.beam import _dict_trie
    levels, n_codes, W = 4, 5, 6
    sid_ids = torch.arange(10, 10 + levels * n_codes).reshape(levels, n_codes)
    vocab = 10 + levels * n_codes + 4
    model = tiny_qwen(vocab, seed=1)
    codes = random_catalog(45, levels, n_codes, seed=2)
    dtrie = _dict_trie(codes, sid_ids)
    ids = torch.tensor([[0, 0, 3, 5, 7], [4, 1, 2, 6, 9]])
    mask = (ids != 0).long()
    T = ids.shape[1]
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, num_beams=W,
                             num_return_sequences=W, max_new_tokens=4, min_new_tokens=4,
                             do_sample=False, length_penalty=0.0, early_stopping=False,
                             prefix_allowed_tokens_fn=lambda b, x: dtrie[tuple(x[T:].tolist())],
                             pad_token_id=0, eos_token_id=vocab - 1, output_scores=True,
                             return_dict_in_generate=True)
    item_of = {tuple(int(sid_ids[l, c]) for l, c in enumerate(r)): i
               for i, r in enumerate(codes)}
    hf_items = [item_of[tuple(s[T:].tolist())] for s in out.sequences]
    ours = recommend(model, ids, mask, SidTrie(codes, n_codes), sid_ids, width=W, k=W)
    assert ours.items.reshape(-1).tolist() == hf_items
    np.testing.assert_allclose(ours.scores.reshape(-1).numpy(), out.sequences_scores.numpy(),
                               rtol=1e-4, atol=1e-4)


def test_bench_beam_json_keys():
    from .conftest import run_cli
    import json
    r = run_cli("bench", "beam", "--json", "--prompts", "2", "--items", "200", "--width", "4",
                "--preset", "tiny", "--repeats", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    for key in ("generate_samples_per_s", "ours_samples_per_s", "bare_forward_samples_per_s",
                "speedup_vs_generate", "ratio_to_bare_forward"):
        assert res[key] > 0
    assert res["speedup_vs_generate"] == pytest.approx(
        res["ours_samples_per_s"] / res["generate_samples_per_s"])
