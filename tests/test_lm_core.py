"""Shared LM pieces: task encoding, the shared-head forward, beam search with a head, GRPO."""
import numpy as np
import pytest
import torch

from protocol.beam import SidTrie, recommend
from protocol.sids import SidTable
from methods.lm.forward import AnswerCE, collate
from methods.lm.config import GRPOConfig
from methods.lm.grpo import GRPOLoss, candidate_token_logps, group_advantages, rule_ndcg_reward
from methods.lm.tasks import Codec
from methods.lm.tokenizer import build_tokenizer, sid_tokens
from recdata.split import Examples

from .conftest import tiny_qwen


def text_of(codec, enc, k):
    """Full prompt + answer text of example k of an Encoded task."""
    return codec.tok.decode(enc.head + enc.suffixes[k] + (enc.answers[k] if enc.answers else []))


TEXTS = ["Keywords: red tent camping. Attributes: Coleman, Camping.",
         "Keywords: bike pump. Attributes: Cycling, Accessories.",
         "Keywords: yoga mat\nnon-slip. Attributes: Fitness.",
         "Keywords: fishing rod. Attributes: Hunting & Fishing."]


def toy_codec(n_codes=4):
    rng = np.random.default_rng(0)
    codes = np.array(sorted({tuple(rng.integers(0, n_codes, 4)) for _ in range(40)}))[:len(TEXTS)]
    tok = build_tokenizer(TEXTS, vocab_size=400, n_codes=n_codes)
    table = SidTable([str(i) for i in range(len(codes))], codes, 0, 0.0, "test")
    return Codec(tok, table, TEXTS), tok, codes


def examples(hist_lists, targets):
    n, W = len(hist_lists), max(map(len, hist_lists))
    h = np.full((n, W), -1)
    for i, hl in enumerate(hist_lists):
        h[i, :len(hl)] = hl
    return Examples(np.arange(n), np.asarray(targets), h, np.array([len(x) for x in hist_lists]))


def test_piecewise_encoding_equals_tokenizing_the_whole_prompt():
    codec, tok, _ = toy_codec()
    ex = examples([[0, 1, 2], [3]], [1, 2])
    for enc in (codec.seqrec(ex), codec.fusion(ex), codec.item2sid(np.arange(4)),
                codec.sid2item(np.arange(4))):
        for k in range(len(enc)):
            text = text_of(codec, enc, k)
            ids = enc.head + enc.suffixes[k] + enc.answers[k]
            assert tok(text, add_special_tokens=False)["input_ids"] == ids, enc.task
    seq = text_of(codec, codec.seqrec(ex), 0)
    assert "The user has interacted with items " + "".join(codec.tok.convert_ids_to_tokens(
        codec.sid_ids[0].tolist())) + ", " in seq
    assert seq.endswith("### Response:\n"
                        + "".join(tok.convert_ids_to_tokens(codec.sid_ids[1].tolist())) + "<eos>")


def test_answer_loss_with_shared_head_equals_whole_sequence_loss():
    codec, tok, _ = toy_codec()
    model = tiny_qwen(len(tok), sharpen=20.0)
    enc = codec.seqrec(examples([[0, 1, 2], [3], [2, 0]], [1, 2, 3]))
    b = collate(enc, [0, 1, 2], tok.pad_token_id)
    loss, n, _, _ = AnswerCE(model)(b)
    ref, cnt = 0.0, 0
    for s, a in zip(enc.suffixes, enc.answers):
        seq = torch.tensor([enc.head + s + a])
        lp = torch.log_softmax(model(seq).logits[0].float(), -1)
        L = len(enc.head) + len(s)
        ref -= float(sum(lp[L - 1 + j, a[j]] for j in range(len(a))))
        cnt += len(a)
    assert int(n) == cnt == 15
    assert float(loss) == pytest.approx(ref, rel=1e-5)


def test_beam_search_with_shared_head_equals_whole_prompts():
    codec, tok, codes = toy_codec()
    model = tiny_qwen(len(tok), sharpen=20.0)
    enc = codec.seqrec(examples([[0, 1, 2], [3], [2, 0]], [1, 2, 3]), with_answers=False)
    b = collate(enc, [0, 1, 2], tok.pad_token_id, with_answers=False)
    sid_ids = torch.tensor(tok.convert_tokens_to_ids(sid_tokens(4, 4))).view(4, 4)
    trie = SidTrie(codes, 4)
    with_head = recommend(model, b.ids, b.mask, trie, sid_ids, width=4, k=4, head=b.head)
    full = torch.cat([b.head.expand(3, -1), b.ids], 1)
    mask = torch.cat([torch.ones(3, len(b.head), dtype=torch.long), b.mask], 1)
    # whole prompts, left-padded at the very front instead of between head and rows
    order = torch.argsort(mask, dim=1, stable=True)
    whole = recommend(model, full.gather(1, order), mask.gather(1, order), trie, sid_ids,
                      width=4, k=4)
    assert with_head.items.tolist() == whole.items.tolist()
    np.testing.assert_allclose(with_head.scores, whole.scores, rtol=1e-4, atol=1e-5)


def test_rule_ndcg_reward_by_hand():
    items = torch.tensor([[5, 7, 9], [1, 2, 3]])
    r = rule_ndcg_reward(items, torch.tensor([7, 4]))
    a = np.array([1 / np.log2(2), 1 / np.log2(3), 1 / np.log2(4)])
    want0 = [-a[0] / a.sum(), 1.0, -a[2] / a.sum()]       # target at rank 1 (0-based)
    np.testing.assert_allclose(r[0].numpy(), want0, rtol=1e-6)
    assert r[1].tolist() == [0.0, 0.0, 0.0]               # target absent: no NDCG penalty
    adv = group_advantages(r)
    assert adv[1].abs().max() == 0                         # identical rewards: no signal
    np.testing.assert_allclose(adv[0].numpy(), (r[0] - r[0].mean()).numpy()
                               / (r[0].std().item() + 1e-4), rtol=1e-6)
    assert adv[0, 1] > 0 > adv[0, 0]


def test_candidate_logps_equal_whole_sequences_and_grpo_terms():
    codec, tok, codes = toy_codec()
    model = tiny_qwen(len(tok), sharpen=20.0)
    enc = codec.seqrec(examples([[0, 1, 2], [3]], [1, 2]), with_answers=False)
    b = collate(enc, [0, 1], tok.pad_token_id, with_answers=False)
    answers = torch.tensor([[codec.answer_sid(i) for i in (1, 3)],
                            [codec.answer_sid(i) for i in (2, 0)]])                  # (2, 2, 5)
    lp = candidate_token_logps(model, b, answers)
    for p in range(2):
        for g in range(2):
            seq = torch.tensor([enc.head + enc.suffixes[p] + answers[p, g].tolist()])
            full = torch.log_softmax(model(seq).logits[0].float(), -1)
            L = len(enc.head) + len(enc.suffixes[p])
            want = [float(full[L - 1 + j, answers[p, g, j]]) for j in range(5)]
            np.testing.assert_allclose(lp[p, g].detach().numpy(), want, rtol=1e-4, atol=1e-5)
    import methods
    from protocol.schema import build
    rl = {**methods.default_config("minionerec")["rl"], "group_size": 2, "beta": 0.5}
    loss = GRPOLoss(build(GRPOConfig, rl, "minionerec.rl"))
    adv = torch.tensor([[1.0, -1.0], [0.5, -0.5]])
    t = loss.terms(lp, lp.detach(), lp.detach(), adv)
    assert float(t["kl"]) == 0.0                           # policy == reference
    assert float(t["policy"]) == pytest.approx(0.0, abs=1e-7)   # ratio 1, advantages sum to 0
    t["policy"].backward()                                 # gradient raises the good candidates
    with torch.no_grad():
        for prm in model.parameters():
            prm -= 1.0 * prm.grad
    after = candidate_token_logps(model, b, answers).sum(-1)
    before = lp.detach().sum(-1)
    assert after[0, 0] > before[0, 0] and after[0, 1] < before[0, 1]
    ref = lp.detach() - 0.3
    assert float(loss.terms(lp, lp.detach(), ref, adv)["kl"]) > 0
