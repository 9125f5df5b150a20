"""LatentR3: the cached thought against the reference's two full passes, the noise-free latent,
the batch-level advantage by hand, an RL step that moves only the thought attention, and the
beam search with the thought hook against exhaustive scoring."""
import contextlib
import math
from types import SimpleNamespace

import numpy as np
import torch

from protocol.beam import SidTrie, recommend
from methods.latentr3.method import LatentR3RLConfig, thought_task
from methods.latentr3.rl import LatentR3RL, neg_perplexity, step_noise
from methods.latentr3.thought import ThoughtLM, ThoughtSFT, add_thought_token, thought_hook
from methods.lm.decode import Catalog
from methods.lm.grpo import Rollout
from methods.lm.tokenizer import sid_token_table

from .conftest import tiny_qwen
from .test_lm_core import examples, toy_codec


def setup(n_thoughts=1, seed=0):
    codec, tok, codes = toy_codec()
    lm = tiny_qwen(len(tok) + 1, seed=seed, sharpen=10.0)
    add_thought_token(lm, tok)
    torch.manual_seed(seed)
    model = ThoughtLM(lm, n_thoughts).eval()
    with torch.no_grad():                 # a non-trivial attention: the thought must matter
        for lin in (model.attention.query, model.attention.key, model.attention.value):
            lin.weight.mul_(4.0)
    return model, codec, tok, codes


def hf_rope(x, positions, base=1000.0):
    """The reference's VanillaRoPE + transformers' apply_rotary_pos_emb. x (L, d)."""
    from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb
    d = x.shape[-1]
    inv = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    freqs = positions.float()[:, None] * inv[None]
    emb = torch.cat([freqs, freqs], -1)
    q, _ = apply_rotary_pos_emb(x[None], x[None], emb.cos(), emb.sin(), unsqueeze_dim=0)
    return q[0]


def two_pass(model, ids, answer):
    """The reference's computation without a cache: a full forward for the states, the
    attention at the position before each thought (keys: every position up to it), then a full
    forward with the thoughts' embeddings in place. -> (A,) answer token log-probs."""
    lm, att = model.lm, model.attention
    x = lm.get_input_embeddings()(torch.tensor(ids)[None])                # (1, L, d)
    for _ in range(model.n_thoughts):
        h = lm(inputs_embeds=x, output_hidden_states=True).hidden_states[-1][0]   # (L, d)
        L = h.shape[0]
        q = hf_rope(att.query(h), torch.arange(L))[-1]
        k = hf_rope(att.key(h), torch.arange(L))
        w = torch.softmax(k @ q / math.sqrt(h.shape[-1]), 0)
        x = torch.cat([x, (w @ att.value(h))[None, None]], 1)
    tail = lm.get_input_embeddings()(torch.tensor(answer[:-1])[None])
    logits = lm(inputs_embeds=torch.cat([x, tail], 1)).logits[0, -len(answer):]
    return torch.log_softmax(logits, -1).gather(1, torch.tensor(answer)[:, None])[:, 0]


def test_cached_thought_equals_two_full_passes():
    for n in (0, 1, 2):                   # 0: the studies' control, the plain prompt
        model, codec, tok, _ = setup(n)
        enc = thought_task(codec, examples([[0, 1, 2, 3], [1], [3, 0]], [1, 2, 3]))
        b = enc.collate([0, 1, 2], tok.pad_token_id)
        assert b.mask[1].sum() < b.mask[0].sum()                          # really left-padded
        with torch.no_grad():
            lp = model.answer_logps(b, b.labels)
            for i in range(3):
                ref = two_pass(model, enc.head + enc.suffixes[i], enc.answers[i])
                assert torch.allclose(lp[i], ref, atol=1e-4), (n, i)
            if n == 0:
                continue
            # the thought matters: another thought gives other answer probabilities
            zero = model.answer_logps(b, b.labels,
                                      noise=torch.ones(3, n, model.config.hidden_size))
            assert not torch.allclose(zero, lp, atol=1e-3)


def test_noise_free_row_is_the_deterministic_thought():
    model, codec, tok, _ = setup()
    G = 4
    eps = step_noise(7, 3, 5, G, 1, model.config.hidden_size, 1.5)
    assert (eps[:, 0] == 0).all() and eps[:, 1:].std().item() > 1.0
    assert torch.equal(eps, step_noise(7, 3, 5, G, 1, model.config.hidden_size, 1.5))
    assert not torch.equal(eps, step_noise(7, 4, 5, G, 1, model.config.hidden_size, 1.5))
    enc = thought_task(codec, examples([[0, 1], [2, 3, 1]], [2, 0]))
    b = enc.collate([0, 1], tok.pad_token_id)
    noise = eps[:2].reshape(2 * G, 1, -1)
    with torch.no_grad():
        rep = model.answer_logps(b, b.labels.repeat_interleave(G, 0), noise, repeat=G)
        det = model.answer_logps(b, b.labels)
        record = {}
        mem, stepper, _ = model.encode(b)
        thought_hook(model, record)(stepper, mem)
        mem2, st2, _ = model.encode(b)
        _, z = model.think(st2, mem2)
    rep = rep.view(2, G, -1)
    assert torch.allclose(rep[:, 0], det, atol=1e-5)                     # row 0: no noise
    assert not torch.allclose(rep[:, 1], det, atol=1e-3)                 # rows 1..: noisy
    assert torch.equal(record["thoughts"], z)                            # decoding's thought


def test_batch_advantage_by_hand_and_over_two_processes():
    r = torch.tensor([[-2.0, -3.0], [-4.0, -1.0]])
    # m = mean(-2, -4) = -3; r - m = [[1, 0], [-1, 2]]; ||.|| = sqrt(6)
    expect = torch.tensor([[1.0, 0.0], [-1.0, 2.0]]) / math.sqrt(6)
    loop = LatentR3RL.__new__(LatentR3RL)
    loop.cfg, loop.size = SimpleNamespace(group_size=2), 2
    roll = lambda rows: Rollout(None, None, rows, None, None)
    # one process
    means = {k: v / 2 for k, v in loop.rollout_sums(roll(r)).items()}
    loop.after_rollout(means)
    assert torch.allclose(loop.advantages(r).float(), expect)
    # two processes, one prompt each: the sums add up to the same advantages
    a, b = loop.rollout_sums(roll(r[:1])), loop.rollout_sums(roll(r[1:]))
    loop.after_rollout({k: (a[k] + b[k]) / 2 for k in a})
    assert torch.allclose(loop.advantages(r[1:]).float(), expect[1:])
    assert torch.allclose(neg_perplexity(torch.log(torch.tensor([[0.5, 0.5]]))),
                          torch.tensor([-2.0]))


def rl_loop(model, codec, tok, codes, tmp_path):
    """A LatentR3RL with its one-process state set by hand (no run context)."""
    cfg = LatentR3RLConfig(enabled=True, lr=1e-2, epochs=1, group_size=4, noise_std=1.5,
                           batch_size=4, micro_batch=2, warmup_ratio=0.0, max_grad_norm=1.0,
                           max_prompts=None, eval_every=0, valid_examples=None)
    loop = LatentR3RL.__new__(LatentR3RL)
    sid_ids = sid_token_table(tok, 4, 4)
    items = torch.cat([sid_ids[torch.arange(4), torch.as_tensor(codes)],
                       torch.full((len(codes), 1), tok.eos_token_id)], 1)
    ex = examples([[0, 1], [2, 3, 1], [1], [3, 2, 0, 1]], [2, 0, 3, 1])
    loop.ctx, loop.cfg, loop.dev, loop.seed = None, cfg, "cpu", 0
    loop.tok, loop.model = tok, model
    loop.catalog = Catalog(SidTrie(codes, 4), sid_ids, items)
    loop.setup_prompts(codec.seqrec(ex, with_answers=False), ex.targets, None, None)
    loop.amp, loop.log_path = contextlib.nullcontext, tmp_path / "rl_log.jsonl"
    model.lm.requires_grad_(False)
    loop.params = [p for p in model.parameters() if p.requires_grad]
    loop.opt = torch.optim.AdamW(loop.params, lr=cfg.lr)
    loop.sched = torch.optim.lr_scheduler.LambdaLR(loop.opt, lambda s: 1.0)
    return loop


def test_rl_step_moves_only_the_thought_attention(tmp_path):
    model, codec, tok, codes = setup(seed=1)
    loop = rl_loop(model, codec, tok, codes, tmp_path)
    lm0 = {k: v.clone() for k, v in model.lm.state_dict().items()}
    att0 = {k: v.clone() for k, v in model.attention.state_dict().items()}
    assert {id(p) for p in loop.params} == {id(p) for p in model.attention.parameters()}
    logs = loop.step(np.arange(4), 0)
    assert all(torch.equal(v, model.lm.state_dict()[k]) for k, v in lm0.items())
    moved = [not torch.equal(v, model.attention.state_dict()[k]) for k, v in att0.items()]
    assert all(moved)
    assert logs["reward"] < 0 and logs["clean_reward"] < 0 and logs["adv_norm"] > 0
    assert (tmp_path / "rl_log.jsonl").read_text().count("\n") == 1


def test_sft_objective_is_the_answer_cross_entropy():
    model, codec, tok, _ = setup()
    enc = thought_task(codec, examples([[0, 1], [2, 3, 1]], [2, 0]))
    b = enc.collate([0, 1], tok.pad_token_id)
    loss, n, aux, _ = ThoughtSFT(model)(b)
    ref = -sum(two_pass(model, enc.head + enc.suffixes[i], enc.answers[i]).sum()
               for i in range(2))
    assert int(n) == b.labels.numel() and float(aux) == 0.0
    assert torch.allclose(loss, ref, atol=1e-3)
    loss.backward()                          # the whole LM and the attention learn in SFT
    assert model.attention.query.weight.grad is not None
    assert model.lm.get_input_embeddings().weight.grad is not None


def test_thought_beam_search_equals_exhaustive_scoring():
    model, codec, tok, codes = setup(seed=3)
    enc = codec.seqrec(examples([[0, 1], [2, 3, 1]], [2, 0]), with_answers=False)
    from methods.lm.forward import collate
    b = collate(enc, [0, 1], tok.pad_token_id, with_answers=False)
    sid_ids = sid_token_table(tok, 4, 4)
    trie = SidTrie(codes, 4)
    res = recommend(model.lm, b.ids, b.mask, trie, sid_ids, width=len(codes), k=len(codes),
                    prefix_hook=thought_hook(model), head=b.head, prefix_states="all")
    sid = sid_ids[torch.arange(4), torch.as_tensor(codes)]                # (I, 4)
    I = len(codes)
    with torch.no_grad():
        lp = model.answer_logps(b, sid.repeat(2, 1), repeat=I).view(2, I, 4)
    exhaustive = lp.sum(-1).argsort(1, descending=True)
    assert torch.equal(res.items, exhaustive)
    plain = recommend(model.lm, b.ids, b.mask, trie, sid_ids, width=I, k=I, head=b.head)
    assert not torch.equal(plain.items, res.items)                       # the thought matters
