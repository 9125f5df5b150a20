"""ReaRec (methods/rearec.py): the cached reasoning loop, each variant's loss by hand, and the
method end to end on toy data (both variants trained, the better one chosen, both reported)."""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark.plan import Plan, RunRequest
from methods.rearec import _model_class

from .conftest import write_dataset


class _Cfg(dict):
    def __getitem__(self, k):
        return dict.__getitem__(self, k)


class _Dataset:
    """What SequentialRecommender reads from a RecBole dataset."""
    item_num = 13

    def num(self, field):
        return self.item_num


def states_without_cache(m, item_seq, item_seq_len):
    """The same h_0..h_K by re-running RecBole's own encoder on the whole sequence
    [history | reasoning tokens so far] at every step (the uncached path `states` must equal)."""
    B, L = item_seq.shape
    x = m._item_inputs(item_seq)
    valid = item_seq != 0
    seq_out = m.trm_encoder(x, m.get_attention_mask(item_seq))[-1]
    hs, inputs = [m.gather_indexes(seq_out, item_seq_len - 1)], []
    for k in range(m.K):
        inputs.append(m._reason_input(hs[-1], k))
        T = L + k + 1
        allowed = torch.zeros((B, T, T), dtype=torch.bool, device=x.device)
        allowed[:, :L, :L] = torch.tril(valid[:, None, :].expand(B, L, L))
        allowed[:, L:, :L] = valid[:, None, :]
        allowed[:, L:, L:] = torch.tril(torch.ones(k + 1, k + 1, dtype=torch.bool,
                                                   device=x.device))
        mask = torch.where(allowed, 0.0, -10000.0)[:, None]     # RecBole's additive mask
        full = torch.cat([x, torch.stack(inputs, 1)], 1)
        hs.append(m.trm_encoder(full, mask)[-1][:, -1])
    return torch.stack(hs, 1)


def tiny(variant, K=2, seed=0, **over):
    import methods._recbole_compat as rc
    rc.import_recbole()
    from recbole.utils import InputType  # noqa: F401  (RecBole imported)
    cfg = {"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "LIST_SUFFIX": "_list",
           "ITEM_LIST_LENGTH_FIELD": "item_length", "NEG_PREFIX": "neg_",
           "MAX_ITEM_LIST_LENGTH": 6, "device": torch.device("cpu"),
           "variant": variant, "reason_steps": K, "hidden_size": 16, "inner_size": 24,
           "n_layers": 2, "n_heads": 2, "hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.5,
           "input_dropout_prob": 0.2, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
           "initializer_range": 0.2, "temperature": 0.5, "erl_kl_weight": 0.05,
           "prl_pl_weight": 1.0, "prl_temp_scale": 5.0, "prl_noise": 0.01,
           "prl_cl_weight": 1.0, "prl_warmup_epochs": 2, **over}
    torch.manual_seed(seed)
    return _model_class()(_Cfg(cfg), _Dataset())


def batch():
    # right-padded histories (RecBole's layout), item 0 = padding
    seq = torch.tensor([[3, 5, 7, 0, 0, 0], [1, 2, 3, 4, 5, 6], [9, 0, 0, 0, 0, 0],
                        [4, 4, 8, 2, 0, 0]])
    return seq, torch.tensor([3, 6, 1, 4]), torch.tensor([8, 7, 2, 11])


@pytest.mark.parametrize("K", [1, 2, 3])
def test_cached_loop_equals_loop_without_cache(K):
    m = tiny("prl", K=K).eval()
    seq, lens, _ = batch()
    with torch.no_grad():
        cached, _ = m.states(seq, lens)
        full = states_without_cache(m, seq, lens)
        # the history states equal RecBole's own encoder (SASRec's computation)
        out, _, _ = m.encode(seq)
        ref = m.trm_encoder(m._item_inputs(seq), m.get_attention_mask(seq))[-1]
    assert cached.shape == (4, K + 1, 16)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cached, full, rtol=1e-5, atol=1e-5)
    # the reasoning really changes the state (a loop that did nothing would also "match")
    assert (cached[:, 1] - cached[:, 0]).abs().max() > 1e-3
    # padding after a history does not leak into the reasoning: same user, longer padding
    with torch.no_grad():
        padded = torch.cat([seq, torch.zeros(4, 3, dtype=torch.long)], 1)
        m2 = tiny("prl", K=K, MAX_ITEM_LIST_LENGTH=9).eval()
        m2.load_state_dict({k: v for k, v in m.state_dict().items()
                            if "position_embedding" not in k}, strict=False)
        m2.position_embedding.weight[:6] = m.position_embedding.weight
        torch.testing.assert_close(m2.states(padded, lens)[0], cached, rtol=1e-5, atol=1e-5)


def test_erl_loss_by_hand():
    m = tiny("erl").eval()
    seq, lens, y = batch()
    with torch.no_grad():
        terms = m.losses(seq, lens, y)
        S = states_without_cache(m, seq, lens)
    E, tau = m.item_embedding.weight, 0.5
    ce = F.cross_entropy(S.mean(1) @ E.T / tau, y)
    p = torch.softmax(S @ E.T / tau, -1).double()
    kls = [(p[b, j] * (p[b, j].log() - p[b, i].log())).sum()
           for b in range(4) for i in range(3) for j in range(3) if i != j]
    div = torch.stack(kls).mean()
    assert terms["ce"].item() == pytest.approx(ce.item(), rel=1e-5)
    assert terms["kl_diversity"].item() == pytest.approx(-0.05 * div.item(), rel=1e-4)
    assert terms["kl_diversity"].item() < 0       # diversity is rewarded
    # prediction = the mean state
    with torch.no_grad():
        scores = m.full_sort_predict({m.ITEM_SEQ: seq, m.ITEM_SEQ_LEN: lens})
    torch.testing.assert_close(scores, S.mean(1) @ E.T, rtol=1e-5, atol=1e-5)


def test_prl_loss_by_hand():
    m = tiny("prl").eval()
    seq, lens, y = batch()
    with torch.no_grad():
        before = m.losses(seq, lens, y, epoch=0)
        S = states_without_cache(m, seq, lens)
    E, tau = m.item_embedding.weight, 0.5
    ce = F.cross_entropy(S[:, 2] @ E.T / tau, y)
    # h_0 at temperature tau * 5^2, h_1 at tau * 5: earlier steps softer
    pl = (F.cross_entropy(S[:, 0] @ E.T / (tau * 25), y, reduction="sum")
          + F.cross_entropy(S[:, 1] @ E.T / (tau * 5), y, reduction="sum")) / 8
    assert set(before) == {"ce", "progressive"}      # no contrastive term in eval/warm-up
    assert before["ce"].item() == pytest.approx(ce.item(), rel=1e-5)
    assert before["progressive"].item() == pytest.approx(pl.item(), rel=1e-5)
    with torch.no_grad():
        scores = m.full_sort_predict({m.ITEM_SEQ: seq, m.ITEM_SEQ_LEN: lens})
    torch.testing.assert_close(scores, S[:, -1] @ E.T, rtol=1e-5, atol=1e-5)

    # contrastive term: after the warm-up, in training; dropout off so the views differ
    # only by the noise; by hand from the two branches' states
    m = tiny("prl", hidden_dropout_prob=0.0, attn_dropout_prob=0.0, input_dropout_prob=0.0,
             prl_noise=0.3)
    m.train()
    assert "contrastive" not in m.losses(seq, lens, y, epoch=1)
    torch.manual_seed(5)
    terms = m.losses(seq, lens, y, epoch=2)
    torch.manual_seed(5)
    S, noisy = m.states(seq, lens, noise=0.3)
    sim = torch.einsum("btd,ktd->btk", noisy[:, 1:], S[:, 1:]) / tau   # (B, K, B)
    want = np.mean([-torch.log_softmax(sim[b, t], -1)[b].item()
                    for b in range(4) for t in range(2)])
    assert terms["contrastive"].item() == pytest.approx(want, rel=1e-5)
    assert (noisy[:, 1:] - S[:, 1:]).abs().max() > 1e-4              # the noise is there
    assert math.isfinite(sum(terms.values()).item())


def _ce_by_hand(h, E, temp, y):
    """Batch-mean cross-entropy of (h E^T / temp) against y, one row at a time."""
    rows = []
    for b in range(len(y)):
        z = (h[b] @ E.T) / temp
        rows.append(torch.logsumexp(z, 0) - z[y[b]])
    return torch.stack(rows).mean()


@pytest.mark.parametrize("K", [2, 3])
def test_prl_total_loss_by_hand(K):
    """The whole PRL training loss, term by term from the model's own states (float64, so
    1e-6 is a real bound): CE(h_K / tau) + w_pl * the MEAN over the K earlier steps of
    CE(h_k / (tau * alpha^(K-k))) -- the authors' code reduces the stacked (B*K) rows with
    one mean -- + w_cl * InfoNCE(noised h_k vs clean h_k, in-batch negatives). Dropout on:
    the two runs replay the same random numbers from one seed."""
    tau, alpha, w_pl, w_cl = 0.5, 5.0, 0.7, 0.3
    m = tiny("prl", K=K, prl_pl_weight=w_pl, prl_cl_weight=w_cl, prl_noise=0.05).double()
    m.train()
    seq, lens, y = batch()
    m.epoch = 2                                           # past the 2-epoch warm-up
    with torch.no_grad():
        torch.manual_seed(11)
        loss = m.calculate_loss({m.ITEM_SEQ: seq, m.ITEM_SEQ_LEN: lens, m.POS_ITEM_ID: y})
        torch.manual_seed(11)
        terms = m.losses(seq, lens, y)
    torch.manual_seed(11)
    with torch.no_grad():
        S, noisy = m.states(seq, lens, noise=0.05)
    E = m.item_embedding.weight
    ce = _ce_by_hand(S[:, K], E, tau, y)
    steps = [_ce_by_hand(S[:, k], E, tau * alpha ** (K - k), y) for k in range(K)]
    pl = sum(steps) / K                                   # mean over the earlier steps
    cl = torch.stack([torch.logsumexp(noisy[b, t] @ S[:, t].T / tau, 0)
                      - noisy[b, t] @ S[b, t] / tau
                      for b in range(4) for t in range(1, K + 1)]).mean()
    assert set(terms) == {"ce", "progressive", "contrastive"}
    assert abs(terms["ce"].item() - ce.item()) < 1e-6
    assert abs(terms["progressive"].item() - w_pl * pl.item()) < 1e-6
    assert abs(terms["contrastive"].item() - w_cl * cl.item()) < 1e-6
    assert abs(loss.item() - (ce + w_pl * pl + w_cl * cl).item()) < 1e-6
    # a summed progressive term is K times the mean: distinguishable at this tolerance
    assert abs(w_pl * sum(steps).item() - terms["progressive"].item()) > 1e-3


def test_prl_noisy_branch_has_its_own_dropout_pass():
    """The noised (contrastive) view reruns the whole batch, history included, with its own
    dropout masks, as the reference does; with dropout off and a negligible noise it is the
    clean view."""
    seq, lens, _ = batch()
    m = tiny("prl").double().eval()
    with torch.no_grad():
        clean, _ = m.states(seq, lens)
        S, noisy = m.states(seq, lens, noise=1e-9)
    assert noisy.shape == S.shape == (4, 3, 16)
    torch.testing.assert_close(S, clean, rtol=0, atol=1e-12)      # the clean view is untouched
    torch.testing.assert_close(noisy, S, rtol=0, atol=1e-6)       # no dropout: same states
    m.train()                                                     # dropout 0.5 / input 0.2
    torch.manual_seed(3)
    with torch.no_grad():
        S, noisy = m.states(seq, lens, noise=1e-9)
    # the history state h_0 already differs: the noisy view had its own history pass
    assert (noisy[:, 0] - S[:, 0]).abs().max() > 1e-2
    assert (noisy[:, 1:] - S[:, 1:]).abs().max() > 1e-2


def test_rearec_end_to_end_toy(tmp_path):
    """Both variants train through RecBole's trainer; the better validation one is used for the
    main row; studies report both; a rerun resumes (reuses) the finished runs."""
    write_dataset(tmp_path / "data", n_users=60, n_items=40)
    plan = Plan(RunRequest("toy", "smoke", ["rearec"], tmp_path / "data", tmp_path / "results",
                           ["rearec.epochs=3", "rearec.hidden_size=16", "rearec.inner_size=24"]))
    ctx = plan.context("rearec")
    ctx.show_progress = False
    m = plan.method("rearec")
    fitted = m.fit(ctx)
    info = fitted.info
    assert set(info["variants"]) == {"erl", "prl"}
    best = max(info["variants"], key=lambda v: info["variants"][v]["best_valid_ndcg@10"])
    assert info["chosen_variant"] == best == fitted.chosen
    ranking = m.rank(ctx, fitted, plan.split.test)
    top = ranking.items
    assert top.shape == (len(plan.split.test), 40) and (top >= 0).all()
    out = tmp_path / "studies"
    res = m.studies(ctx, fitted, ranking, out)
    assert set(res["variants"]) == {"erl", "prl"}
    saved = json.loads((out / "studies.json").read_text())
    assert saved["chosen_variant"] == best
    # the chosen variant's studies row is the main row's ranking
    from protocol.metrics import summarize, target_ranks
    assert saved["variants"][best]["test"] == summarize(target_ranks(top, plan.split.test.targets),
                                                      plan.settings.eval.ks)
    # a second fit reuses the finished runs: same choice, same ranking
    m2 = plan.method("rearec")
    again = m2.fit(ctx)
    assert again.chosen == best
    assert np.array_equal(m2.rank(ctx, again, plan.split.test).items, top)
