"""Wiring, not only maths: every LASAR switch's value as the YAML (through a profile) sets it
reaches the object that uses it, built by the method's own code; the EMA reward baseline over
three steps and the REINFORCE term with an entropy bonus against hand computations.

The switch test compares with the paper's values written here, not with the YAML read back:
change a switch in methods/configs/lasar.yaml and it fails; change a module's own default (a
constructor's, a class attribute's) and it still passes, because the method passes every value
explicitly."""
import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmark.plan import Plan, RunRequest
from methods.lasar.latent import ALIGNMENTS
from methods.lasar.objective import LatentSFT
from methods.lasar.rl import LasarGRPO, reinforce_terms

from .conftest import write_dataset
from .test_lasar import latent_setup

# the paper's settings (Sections 2.3, 2.4, 3.4; Table 7) that the YAML must carry to the code
PAPER = {"stage2.align": "kl", "stage2.align_weight": 0.1, "stage2.policy_weight": 0.1,
         "stage2.detach_policy_input": False, "rl.terminal_kl": True, "rl.reinforce": True,
         "rl.terminal_kl_weight": 1e-5, "rl.reinforce_coef": 0.01, "rl.step_penalty": 5e-4,
         "rl.ema_decay": 0.9, "inference.n_mode": "sample", "n_max": 8}


@pytest.fixture(scope="module")
def lasar(tmp_path_factory):
    """LASAR as a run builds it: the toy dataset, the smoke profile over the YAML defaults."""
    d = tmp_path_factory.mktemp("wiring")
    write_dataset(d / "data", n_users=20, n_items=20)
    plan = Plan(RunRequest("toy", "smoke", ["lasar"], d / "data", d / "out"))
    return plan.method("lasar")


def test_every_lasar_switch_reaches_the_code_that_uses_it(lasar):
    c = lasar.config
    base, _, tok, _ = latent_setup()
    # Stage 2: the Policy Head's input and the objective, built by the method's own code
    latent = lasar.new_latent(SimpleNamespace(seed=0), base.lm, tok, c.stage2)
    assert latent.detach_policy_input is PAPER["stage2.detach_policy_input"]
    assert latent.n_max == PAPER["n_max"]
    obj = lasar.objective(latent, c.stage2)
    assert isinstance(obj, LatentSFT) and obj.dist is ALIGNMENTS[PAPER["stage2.align"]]
    assert (obj.align_weight, obj.policy_weight) == (PAPER["stage2.align_weight"],
                                                     PAPER["stage2.policy_weight"])
    # RL: the loss terms the loop adds, and their weights, from the configured RL settings
    rl = c.rl
    assert (rl.terminal_kl, rl.reinforce) == (PAPER["rl.terminal_kl"], PAPER["rl.reinforce"])
    assert (rl.terminal_kl_weight, rl.reinforce_coef, rl.step_penalty, rl.ema_decay) == (
        PAPER["rl.terminal_kl_weight"], PAPER["rl.reinforce_coef"], PAPER["rl.step_penalty"],
        PAPER["rl.ema_decay"])
    names = _rl_term_names(latent, tok, rl)
    assert ("terminal_kl" in names) is PAPER["rl.terminal_kl"]
    assert ("reinforce" in names) is PAPER["rl.reinforce"]
    # inference: how Table 1's row chooses N
    dec = lasar.decoder(SimpleNamespace(device="cpu", topk=5),
                        SimpleNamespace(tok=tok, catalog=None, generator=None))
    assert dec.inference.n_mode == PAPER["inference.n_mode"]


def _rl_term_names(latent, tok, rl):
    """The names of the loss terms LasarGRPO.terms returns for one micro-batch with `rl`."""
    from methods.lasar.anchors import Anchors
    from methods.lasar.objective import latent_task
    from methods.lasar.latent import START
    from methods.lm.grpo import GRPOLoss, Rollout
    from methods.lm.tokenizer import sid_token_table

    from .test_lm_core import examples, toy_codec
    codec, _, codes = toy_codec()
    D = latent.lm.config.hidden_size
    prompts = latent_task(codec, examples([[0, 1], [2]], [3, 1]), tok.convert_tokens_to_ids(START),
                          Anchors(torch.randn(5, D).half(), torch.tensor([0, 3, 5])))
    loop = LasarGRPO.__new__(LasarGRPO)             # the hooks' state only
    loop.cfg, loop.tok, loop.dev, loop.prompts, loop.model = rl, tok, "cpu", prompts, latent
    loop.ref, loop.loss, loop.baseline = copy.deepcopy(latent), GRPOLoss(rl), 0.0
    sid = sid_token_table(tok, 4, 4)[torch.arange(4), torch.as_tensor(codes)]
    items = torch.tensor([[0, 1], [3, 0]])
    answers = torch.cat([sid[items], torch.full((2, 2, 1), tok.eos_token_id)], -1)
    roll = Rollout(items, torch.tensor([1, 3]), torch.zeros(2, 2), torch.zeros(2, 2), answers,
                   extra={"n": torch.tensor([2, 3]), "r_group": torch.tensor([1.0, 0.0])})
    with torch.no_grad():
        terms, _ = loop.terms(roll, np.arange(2), slice(0, 2))
    return set(terms)


def test_ema_reward_baseline_over_three_steps_by_hand():
    """b starts at the first step's mean R_group, then b <- 0.9 b + 0.1 mean R_group (Eq. 6's
    EMA baseline): rewards 0.2, 0.5, 0.1 give 0.2, 0.23, 0.217."""
    loop = LasarGRPO.__new__(LasarGRPO)
    loop.cfg, loop.baseline = SimpleNamespace(ema_decay=0.9), None
    seen = []
    for r in (0.2, 0.5, 0.1):
        means = {"reward": r, "n": 3.0, "hit": 0.0, "signal": 0.0}
        loop.after_rollout(means)
        seen.append(loop.after_step(means)["baseline"])
    assert seen == pytest.approx([0.2, 0.9 * 0.2 + 0.1 * 0.5, 0.9 * 0.23 + 0.1 * 0.1])


def test_reinforce_term_with_entropy_by_hand():
    """Eq. 6 with an entropy bonus, two prompts: loss = mean_b[-(R_b - b - lambda N_b) log
    pi(N_b) - eta H(pi_b)], worked out from the softmax by hand."""
    logits = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 0.0]])
    n, r = torch.tensor([2, 1]), torch.tensor([1.0, 0.0])
    baseline, lam, eta = 0.25, 0.1, 0.05
    loss, ent = reinforce_terms(logits, n, r, baseline, lam, eta)
    total, ents = 0.0, []
    for row, k, rb in ((np.array([0.0, 1.0, 2.0]), 2, 1.0), (np.array([1.0, 0.0, 0.0]), 1, 0.0)):
        p = np.exp(row) / np.exp(row).sum()
        h = -(p * np.log(p)).sum()
        ents.append(h)
        total += -(rb - baseline - lam * k) * np.log(p[k - 1]) - eta * h
    assert loss.item() == pytest.approx(total / 2, rel=1e-6)
    assert ent.item() == pytest.approx(np.mean(ents), rel=1e-6)
