"""LASAR: the latent loop against recomputation, variable N in a batch, decoding against
exhaustive scoring, alignment losses by hand, the Policy Head's labels, REINFORCE's sign,
Force-N, teacher and segmentation."""
import json

import numpy as np
import pytest
import torch

from protocol.beam import SidTrie
from methods.lasar.latent import (LatentLM, add_latent_tokens, bidir_kl, cosine_distance, mse,
                                  policy_labels, stepwise_alignment, START)
from methods.lasar.objective import LatentSFT, latent_task
from methods.lasar.rl import latent_candidate_logps, reinforce_terms
from methods.lasar.segment import boundaries
from methods.lasar.teacher import imported_cots, template_cot
from methods.lm.tokenizer import sid_token_table

from .conftest import tiny_qwen
from .test_lm_core import examples, toy_codec


def latent_setup(seed=0):
    codec, tok, codes = toy_codec()
    model = tiny_qwen(len(tok) + 3, seed=seed, sharpen=10.0)
    add_latent_tokens(model, tok)
    torch.manual_seed(seed)
    latent = LatentLM(model, tok, n_max=8, policy_hidden=16, detach_policy_input=True).eval()
    return latent, codec, tok, codes


def recompute(latent, ids, n, answer):
    """The loop without a cache: the whole sequence [ids, h_0..h_{t-1}] again at every step.
    -> (states (n, D), logits predicting `answer` (A, V))."""
    lm = latent.lm
    emb = lm.get_input_embeddings()
    x = emb(torch.tensor(ids)[None])                                      # (1, L, D)
    h = lm(inputs_embeds=x, output_hidden_states=True).hidden_states[-1][:, -1]
    states = []
    for _ in range(n):
        x = torch.cat([x, h[:, None]], 1)
        h = lm(inputs_embeds=x, output_hidden_states=True).hidden_states[-1][:, -1]
        states.append(h[0])
    tail = emb(torch.tensor([latent.end_id] + answer[:-1])[None])
    logits = lm(inputs_embeds=torch.cat([x, tail], 1)).logits[0, -len(answer):]
    return torch.stack(states), logits


def test_cached_loop_equals_recomputing_the_whole_sequence():
    latent, codec, tok, _ = latent_setup()
    enc = latent_task(codec, examples([[0, 1, 2]], [3]), tok.convert_tokens_to_ids(START))
    b = enc.collate([0], tok.pad_token_id)
    with torch.no_grad():
        for n in (1, 3, 6):
            _, _, states, stepper = latent.run(b, n=torch.tensor([n]))
            logits = latent.answer_logits(stepper, b.labels)
            ref_states, ref_logits = recompute(latent, enc.head + enc.suffixes[0], n,
                                               enc.answers[0])
            assert torch.allclose(states[0], ref_states, atol=1e-4)
            assert torch.allclose(logits[0], ref_logits, atol=1e-3)


def test_mixed_n_batch_equals_each_sample_alone():
    latent, codec, tok, _ = latent_setup()
    enc = latent_task(codec, examples([[0, 1, 2, 3], [1], [3, 0]], [1, 2, 3]),
                      tok.convert_tokens_to_ids(START))
    n = torch.tensor([2, 5, 3])
    with torch.no_grad():
        b = enc.collate([0, 1, 2], tok.pad_token_id)
        assert b.mask[1].sum() < b.mask[0].sum()                          # really left-padded
        _, _, states, stepper = latent.run(b, n=n)
        logits = latent.answer_logits(stepper, b.labels)
        for i in range(3):
            one = enc.collate([i], tok.pad_token_id)
            _, _, s1, st1 = latent.run(one, n=n[i:i + 1])
            l1 = latent.answer_logits(st1, one.labels)
            assert torch.allclose(states[i, :n[i]], s1[0], atol=1e-4)
            assert torch.allclose(logits[i], l1[0], atol=1e-3)


def test_latent_beam_search_equals_exhaustive_scoring():
    """The inference path (prefix hook + trie beam search) against scoring every catalog item
    with the RL path (latent_candidate_logps), same forced N."""
    from methods.lasar.config import InferenceConfig
    from methods.lasar.method import Decoder
    from methods.lm.decode import Catalog
    latent, codec, tok, codes = latent_setup(seed=3)
    enc = latent_task(codec, examples([[0, 1], [2, 3, 1]], [2, 0]),
                      tok.convert_tokens_to_ids(START), with_answers=False)
    sid_ids = sid_token_table(tok, 4, 4)
    sid = sid_ids[torch.arange(4), torch.as_tensor(codes)]                # (I, 4)
    answers = torch.cat([sid, torch.full((len(codes), 1), tok.eos_token_id)], 1)
    m = Decoder(tok, Catalog(SidTrie(codes, 4), sid_ids, answers), torch.Generator(), "cpu",
                len(codes), InferenceConfig("argmax", None), eval_batch=2)
    items, ns = m.decode(latent, enc, force_n=3)
    assert (ns == 3).all()
    b = enc.collate([0, 1], tok.pad_token_id)
    with torch.no_grad():
        lp, _, _ = latent_candidate_logps(latent, b, answers[None].expand(2, -1, -1)[:, :, :4]
                                          .contiguous(), torch.tensor([3, 3]))
    exhaustive = lp.sum(-1).argsort(1, descending=True).numpy()          # (2, I)
    assert (items == exhaustive).all()
    _, n8 = m.decode(latent, enc, force_n=8)
    with torch.no_grad():
        lp8, _, _ = latent_candidate_logps(latent, b, answers[None].expand(2, -1, -1)[:, :, :4]
                                           .contiguous(), torch.tensor([8, 8]))
    assert (n8 == 8).all() and not torch.allclose(lp8, lp, atol=1e-3)    # N matters
    with pytest.raises(ValueError, match="force_n"):
        latent.choose_n(torch.zeros(2, 8), force_n=9)


def test_alignment_losses_by_hand():
    a, b = torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([[0.0, 0.5, 0.5]])
    pa, pb = np.exp([1, 0, -1]) / np.exp([1, 0, -1]).sum(), np.exp([0, .5, .5]) / np.exp([0, .5, .5]).sum()
    kl = 0.5 * ((pa * np.log(pa / pb)).sum() + (pb * np.log(pb / pa)).sum())
    assert bidir_kl(a, b).item() == pytest.approx(kl, rel=1e-5)
    assert bidir_kl(a, a).item() == pytest.approx(0.0, abs=1e-7)
    cos = (1 * 0 + 0 * .5 + -1 * .5) / (np.sqrt(2) * np.sqrt(.5))
    assert cosine_distance(a, b).item() == pytest.approx(1 - cos, rel=1e-5)
    assert mse(a, b).item() == pytest.approx(((1 - 0) ** 2 + .25 + 2.25) / 3, rel=1e-6)
    # step-wise (Eq. 4): sample 0 aligns steps 1..2; sample 1 has N = 3 > 2 segments: dropped
    states = torch.stack([a.expand(3, 3), b.expand(3, 3)])                # (2, 3, 3)
    anchors = torch.stack([b.expand(2, 3), b.expand(2, 3)])               # (2, 2, 3)
    per, kept = stepwise_alignment(states, torch.tensor([2, 3]), anchors, torch.tensor([4, 2]),
                                   mse)
    assert kept.tolist() == [True, False]
    assert per[0].item() == pytest.approx(mse(a, b).item(), rel=1e-6)     # mean of 2 equal steps
    assert per[1].item() == 0.0


def test_policy_labels_are_clipped_segment_counts():
    assert policy_labels(torch.tensor([0, 1, 5, 8, 12]), 8).tolist() == [0, 0, 4, 7, 7]


def test_reinforce_gradient_raises_rewarded_n_and_lowers_penalised_n():
    torch.manual_seed(0)
    for r_group, direction in ((1.0, 1), (0.0, -1)):
        logits = torch.zeros(1, 8, requires_grad=True)
        n = torch.tensor([3])
        loss, _ = reinforce_terms(logits, n, torch.tensor([r_group]), baseline=0.5,
                                  step_penalty=5e-4, entropy_coef=0.0)
        loss.backward()
        with torch.no_grad():
            after = torch.log_softmax(logits - 1.0 * logits.grad, -1)[0, 2]
        assert direction * (after.item() - np.log(1 / 8)) > 0
    # the step penalty alone (reward = baseline) pushes towards smaller N
    logits = torch.zeros(1, 8, requires_grad=True)
    reinforce_terms(logits, torch.tensor([8]), torch.tensor([0.5]), 0.5, 0.1, 0.0)[0].backward()
    assert logits.grad[0, 7] > 0                                          # descent lowers N=8


def test_sft_objective_terms_and_boundary_safety():
    from methods.lasar.anchors import Anchors
    latent, codec, tok, _ = latent_setup()
    D = latent.config.hidden_size
    anchors = Anchors(torch.randn(5, D).half(), torch.tensor([0, 3, 5]))  # 3 and 2 segments
    enc = latent_task(codec, examples([[0, 1], [2]], [3, 1]), tok.convert_tokens_to_ids(START),
                      anchors)
    b = enc.collate([0, 1], tok.pad_token_id)
    assert b.extra["segments"].tolist() == [3, 2] and b.extra["anchors"].shape == (2, 3, D)
    with torch.no_grad():
        latent.policy_head.w2.bias.copy_(torch.arange(8.0) * -10)           # argmax N = 1
        ce, ntok, aux, logs = LatentSFT(latent, "kl", 0.1, 0.1)(b)
        ce0, _, aux0, logs0 = LatentSFT(latent, "none", 0.1, 0.1)(b)
    assert ntok == 10 and ce.item() == pytest.approx(ce0.item())
    assert logs["aligned_share"] == 2 and logs["mean_n"] == 2 and "align" not in logs0
    assert aux.item() == pytest.approx(aux0.item() + 0.1 * logs["align"], rel=1e-5)
    with torch.no_grad():
        latent.policy_head.w2.bias.copy_(torch.arange(8.0) * 10)            # argmax N = 8
        _, _, _, logs8 = LatentSFT(latent, "kl", 0.1, 0.1)(b)
    assert logs8["aligned_share"] == 0 and logs8["align"] == 0.0          # N > segments: out


def test_stage2_joint_loss_shapes_h0_unless_detached():
    """Section 2.3's one loss L_CE + alpha L_align + beta L_policy: by default (Stage 2's
    `detach_policy_input: false`) the Policy Head's CE reaches the LM through h_0; detached, it
    trains the head alone."""
    from methods.lasar.anchors import Anchors
    latent, codec, tok, _ = latent_setup()
    anchors = Anchors(torch.randn(5, latent.config.hidden_size).half(), torch.tensor([0, 3, 5]))
    enc = latent_task(codec, examples([[0, 1], [2]], [3, 1]), tok.convert_tokens_to_ids(START),
                      anchors)
    b = enc.collate([0, 1], tok.pad_token_id)
    grads = {}
    for detach in (False, True):
        latent.detach_policy_input = detach
        latent.zero_grad(set_to_none=True)
        _, _, aux, _ = LatentSFT(latent, "none", 0.1, 0.1)(b)          # aux = beta L_policy
        aux.backward()
        grads[detach] = {n for n, p in latent.lm.named_parameters()
                         if p.grad is not None and p.grad.abs().sum() > 0}
        assert latent.policy_head.w1.weight.grad.abs().sum() > 0
    assert "model.layers.1.mlp.down_proj.weight" in grads[False] and len(grads[False]) > 10
    assert grads[True] == set()


def test_sampled_inference_is_reproducible_with_its_seed():
    """Section 3.4's adaptive sampling: N ~ pi(.|h_0) per user, drawn from the run's seed, so
    decoding twice gives the same N and items; another seed draws other N; argmax differs."""
    from methods.lasar.config import InferenceConfig
    from methods.lasar.method import Decoder
    from methods.lm.decode import Catalog
    latent, codec, tok, codes = latent_setup(seed=3)
    hist = [[0, 1], [2, 3, 1], [1], [3, 2], [0], [2, 1, 0], [3], [1, 2]] * 2
    enc = latent_task(codec, examples(hist, [2] * len(hist)), tok.convert_tokens_to_ids(START),
                      with_answers=False)
    sid_ids = sid_token_table(tok, 4, 4)
    sid = sid_ids[torch.arange(4), torch.as_tensor(codes)]
    answers = torch.cat([sid, torch.full((len(codes), 1), tok.eos_token_id)], 1)
    catalog = Catalog(SidTrie(codes, 4), sid_ids, answers)

    def decode(seed, mode="sample"):
        m = Decoder(tok, catalog, torch.Generator().manual_seed(seed), "cpu", len(codes),
                    InferenceConfig(mode, None), eval_batch=4)
        return m.decode(latent, enc)
    (i1, n1), (i2, n2), (_, n3) = decode(42), decode(42), decode(43)
    assert (n1 == n2).all() and (i1 == i2).all()
    assert not (n1 == n3).all() and len(set(n1.tolist())) > 2
    _, na = decode(42, "argmax")
    assert len(set(na.tolist())) == 1 and not (n1 == na).all()


def test_template_teacher_grows_with_the_history_and_import_checks_coverage(tmp_path):
    """The template writes more sentences for a richer history (tests/test_teacher.py has its
    structure); the import teacher must cover every example."""
    from methods.lasar.segment import sentences
    recs = [{"attributes": ["BrandA", "Sports", c], "keywords": f"thing {i}"}
            for i, c in enumerate(["Camping", "Cycling", "Fitness", "Fishing", "Camping"] * 2)]
    short, long = template_cot([0], 1, recs), template_cot(list(range(9)), 2, recs)
    assert len(sentences(long)) > len(sentences(short))
    last = long.splitlines()[-1]
    assert "thing 2" in last and "by BrandA" in last                 # target named, brand kept
    path = tmp_path / "cots.jsonl"
    path.write_text(json.dumps({"user": "u1", "target": "i1", "cot": "because"}) + "\n")

    class DS:
        user_ids, item_ids = ["u1", "u2"], ["i0", "i1"]
    ex = examples([[0], [0]], [1, 1])
    ex.users = np.array([0, 1])
    from protocol.errors import BenchmarkError
    with pytest.raises(BenchmarkError, match="no CoT for user u2, target i1"):
        imported_cots(ex, DS, path)
    assert imported_cots(ex.subset([0]), DS, path) == ["because"]


def test_segment_boundaries_where_similarity_drops():
    e = np.array([[1, 0], [0.99, 0.14], [0, 1], [0.1, 0.99], [1, 0]], dtype=np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    assert boundaries(e, 0.5) == [0, 2, 4]
    assert boundaries(e[:1], 0.5) == [0]


def _alone(lm, ids):
    """The last token's last-layer state of `ids` encoded alone (no padding, no mask)."""
    with torch.no_grad():
        return lm(input_ids=torch.tensor(ids)[None],
                  output_hidden_states=True).hidden_states[-1][0, -1]


def test_anchors_equal_encoding_each_segment_alone():
    """Whole segments (here up to ~180 tokens, past the old 64-token cut), batched with
    shorter ones (left padding, own position ids) under a token budget: each anchor is the
    segment encoded alone, whole, up to float16 noise; nothing is cut under a 512 cap."""
    from methods.lasar.anchors import encode_segments
    latent, codec, tok, _ = latent_setup()
    segs = [["Step 1, the user likes tents.", "Camping again.",
             "Step 1, the user likes tents. " * 6],
            ["Bike pump next.", "Camping again, then cycling gear and a fitness mat. " * 5]]
    flat = [s for ss in segs for s in ss]
    lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in flat]
    assert max(lengths) > 150 and sorted(lengths)[-2] > 100
    a = encode_segments(latent.lm, tok, segs, "cpu", max_tokens=512, batch_size=3,
                        token_budget=400)
    assert a.vectors.dtype == torch.float16 and a.counts().tolist() == [3, 2]
    assert a.info["cut"] == 0 and a.info["cut_share"] == 0.0
    assert a.info["segments"] == 5 and a.info["longest"] == max(lengths)
    for k, text in enumerate(flat):
        h = _alone(latent.lm, tok(text, add_special_tokens=False)["input_ids"])
        # float16 storage (half an ulp: 1e-3 at |h| < 4) is the only difference measured
        assert torch.allclose(a.vectors[k].float(), h, atol=2e-3 * h.abs().max().item()), k
    # one batch of all five (more padding) gives the same anchors up to float noise
    b = encode_segments(latent.lm, tok, segs, "cpu", max_tokens=512, batch_size=64)
    assert torch.allclose(a.vectors.float(), b.vectors.float(), atol=1e-2)
    steps, counts, last = a.batch([1, 0], n_max=8)
    assert steps.shape == (2, 3, latent.config.hidden_size) and counts.tolist() == [2, 3]
    assert torch.equal(last[1], a.vectors[2].float()) and torch.equal(last[0], a.vectors[4].float())


def test_anchor_cap_keeps_a_long_segments_last_tokens_and_counts_the_cut():
    from methods.lasar.anchors import encode_segments
    latent, codec, tok, _ = latent_setup()
    segs = [["Camping again.", "Step 1, the user likes tents. " * 6],
            ["Camping again, then cycling gear and a fitness mat. " * 5]]
    a = encode_segments(latent.lm, tok, segs, "cpu", max_tokens=64)
    assert a.info["cut"] == 2 and a.info["cut_share"] == pytest.approx(2 / 3)
    for k, text in enumerate(s for ss in segs for s in ss):
        h = _alone(latent.lm, tok(text, add_special_tokens=False)["input_ids"][-64:])
        assert torch.allclose(a.vectors[k].float(), h, atol=2e-2 * h.abs().max().item()), k


def test_budget_batches_bound_padded_tokens():
    from methods.lasar.anchors import budget_batches
    lengths = [500, 3, 120, 7, 300, 60, 3, 1000]
    batches = budget_batches(lengths, batch_size=3, token_budget=600)
    assert sorted(np.concatenate(batches).tolist()) == list(range(8))
    assert [b.tolist() for b in batches] == [[1, 6, 3], [5, 2], [4], [0], [7]]
    for b in batches:                         # a lone segment past the budget is its own batch
        assert len(b) <= 3 and (len(b) == 1 or len(b) * max(lengths[k] for k in b) <= 600)


def test_local_teacher_generates_one_capped_cot_per_example(tmp_path):
    from methods.lasar.teacher import local_cots
    latent, codec, tok, _ = latent_setup()
    latent.lm.save_pretrained(tmp_path / "teacher")
    tok.save_pretrained(tmp_path / "teacher")
    recs = [{"keywords": f"thing {i}", "attributes": ["B", "Sports", "Camping"]} for i in range(4)]
    from protocol.schema import replace
    from methods.lasar.config import TeacherConfig
    cfg = TeacherConfig("local", None, str(tmp_path / "teacher"), 2, 6)
    ex = examples([[0, 1], [2], [1, 2, 3]], [3, 0, 0])
    cots = local_cots(ex, recs, cfg, "cpu", tmp_path)
    assert len(cots) == 3 and all(isinstance(c, str) and c for c in cots)
    longer = local_cots(ex, recs, replace(cfg, local_max_new_tokens=12), "cpu", tmp_path)
    assert all(b.startswith(a) for a, b in zip(cots, longer))           # greedy, then capped
    assert any(len(b) > len(a) for a, b in zip(cots, longer))


def test_local_teacher_prompt_and_the_auto_teacher():
    """The local teacher asks for GREAM's headed chain (Appendix E.2) from the item text of the
    history and the target; `auto` is `local` with a model, else `template`, and shares the
    CoT key of what it resolves to; another kind's settings leave that key alone."""
    from protocol.schema import replace
    from methods.lasar.config import TeacherConfig
    from methods.lasar.teacher import teacher_inputs, teacher_prompt
    recs = [{"keywords": f"thing {i}", "attributes": [f"Brand{i}", "Sports", f"Cat{i}"]}
            for i in range(4)]
    text = teacher_prompt([0, 2], 3, recs)
    for needle in ("thing 0", "Cat0", "Brand0", "thing 2", "Cat2", "thing 3", "Brand3",
                   "Step 1: Extraction of Behavioral Evidence", "Step 2: Modeling of Latent",
                   "Step 3: Inference of User Intent", "Recommendation:"):
        assert needle in text, needle
    assert text.index("thing 0") < text.index("thing 2") < text.index("thing 3")
    auto = TeacherConfig("auto", None, "smollm2", 8, 160)
    assert auto.resolved().kind == "local"
    assert replace(auto, local_model=None).resolved().kind == "template"
    assert teacher_inputs(auto) == teacher_inputs(replace(auto, kind="local"))
    template = TeacherConfig("template", None, "smollm2", 8, 160)
    assert (teacher_inputs(replace(auto, local_model=None)) == teacher_inputs(template)
            == teacher_inputs(replace(template, local_batch=2, local_model="/elsewhere")))
    assert "prompt" in teacher_inputs(auto)


def _rl_term_grads(rl_detaches=True):
    """Each of RL's loss terms (Section 2.4: L_GRPO + gamma_KL L_terminalKL + gamma_RF
    L_REINFORCE) from LasarGRPO.terms on a tiny LatentLM trained jointly in Stage 2 (its head
    reads h_0 undetached), backpropagated alone; `rl_detaches`: the loop's own setting.
    -> {term: (names of LM parameters with a nonzero gradient, same for the Policy Head)}."""
    import copy

    import methods
    from protocol.schema import build, replace
    from methods.lasar.anchors import Anchors
    from methods.lasar.config import LasarConfig
    from methods.lasar.rl import LasarGRPO
    from methods.lm.grpo import GRPOLoss, Rollout
    latent, codec, tok, codes = latent_setup(seed=1)
    latent.detach_policy_input = False             # Stage 2's default: the joint loss
    D = latent.config.hidden_size
    anchors = Anchors(torch.randn(5, D).half(), torch.tensor([0, 3, 5]))
    prompts = latent_task(codec, examples([[0, 1], [2]], [3, 1]),
                          tok.convert_tokens_to_ids(START), anchors)
    rl = replace(build(LasarConfig, methods.default_config("lasar"), "lasar").rl,
                 terminal_kl_weight=1.0, reinforce_coef=1.0)
    loop = LasarGRPO.__new__(LasarGRPO)            # the hooks' state only: no catalog, no ctx
    loop.cfg, loop.tok, loop.dev, loop.prompts, loop.model = rl, tok, "cpu", prompts, latent
    loop.ref, loop.loss, loop.baseline = copy.deepcopy(latent), GRPOLoss(rl), 0.3
    loop.detach_policy_input = rl_detaches
    with torch.no_grad():                          # a reference unlike the policy: KL != 0
        for p in loop.ref.lm.parameters():
            p.add_(0.05 * torch.randn_like(p))
    sid = sid_token_table(tok, 4, 4)[torch.arange(4), torch.as_tensor(codes)]   # (I, 4)
    items = torch.tensor([[0, 1, 2], [3, 0, 1]])                                # B=2, G=3
    answers = torch.cat([sid[items], torch.full((2, 3, 1), tok.eos_token_id)], -1)
    roll = Rollout(items, torch.tensor([1, 3]), torch.zeros(2, 3),
                   torch.tensor([[1.0, -0.5, -0.5], [-1.0, 0.5, 0.5]]), answers,
                   extra={"n": torch.tensor([2, 3]), "r_group": torch.tensor([1.0, 0.0])})
    out = {}
    for name in ("policy", "kl", "terminal_kl", "reinforce"):
        latent.zero_grad(set_to_none=True)
        terms, _ = loop.terms(roll, np.arange(2), slice(0, 2))
        terms[name].backward()
        out[name] = tuple({n for n, p in mod.named_parameters()
                           if p.grad is not None and p.grad.abs().sum() > 0}
                          for mod in (latent.lm, latent.policy_head))
    return out


def test_reinforce_trains_only_the_policy_head_and_grpo_and_terminal_kl_only_the_lm():
    """Section 2.4: REINFORCE on the Policy Head's choice of N updates phi alone (its input
    h_0 is detached in RL, also after a joint Stage 2); the GRPO terms (Eq. 5) and the
    terminal KL train the LM and leave the head alone (they are computed with N given)."""
    grads = _rl_term_grads()
    head = {"w1.weight", "w1.bias", "w2.weight", "w2.bias"}
    lm_layers = {n for n, _ in latent_setup(seed=1)[0].lm.named_parameters() if "layers." in n}
    assert grads["reinforce"] == (set(), head)
    for term in ("policy", "kl", "terminal_kl"):
        lm, ph = grads[term]
        assert ph == set(), term
        assert "model.layers.1.mlp.down_proj.weight" in lm and len(lm & lm_layers) > 10, term
    assert "lm_head.weight" in grads["policy"][0]           # the answer tokens' log-probs
    assert "lm_head.weight" not in grads["terminal_kl"][0]  # h_N only
    # the check can fail: an undetached h_0 sends REINFORCE into the LM
    assert len(_rl_term_grads(rl_detaches=False)["reinforce"][0] & lm_layers) > 10


def test_aligned_share_per_step_and_in_the_fit_info(tmp_path):
    """Appendix E.3 drops the alignment term of a sample whose N exceeds its segment count.
    With N = 3 for every sample (the head's bias) and segment counts 1..5, samples 3, 4 and 5
    keep it: the Trainer's step (micro-batches of 2) logs aligned_share 3/5, and the fit info
    holds it per evaluation interval and over the run (TensorBoard and train_log.jsonl too)."""
    from methods.lasar.anchors import Anchors
    from methods.lm.config import SFTConfig
    from methods.lm.sft import Trainer
    latent, codec, tok, _ = latent_setup()
    D = latent.config.hidden_size
    counts = [1, 2, 3, 4, 5]
    anchors = Anchors(torch.randn(sum(counts), D).half(),
                      torch.tensor(np.concatenate([[0], np.cumsum(counts)])))
    ex = examples([[0, 1], [2], [1, 2, 3], [3], [0, 2]], [3, 1, 0, 2, 1])
    start = tok.convert_tokens_to_ids(START)
    train = latent_task(codec, ex, start, anchors)
    with torch.no_grad():
        latent.policy_head.w2.weight.zero_()
        latent.policy_head.w2.bias.copy_(-100.0 * (torch.arange(8.0) - 2).abs())   # N = 3
    objective = LatentSFT(latent, "kl", 0.1, 0.1)
    with torch.no_grad():
        *_, logs = objective(train.collate(np.arange(5), tok.pad_token_id))
    n_hand = sum(1 for c in counts if 3 <= c)                           # hand count: 3
    assert logs["aligned_share"] == n_hand and logs["mean_n"] == 3 * 5
    cfg = SFTConfig(lr=1e-6, epochs=1, batch_size=5, micro_batch=2, patience=1, eval_every=0,
                    warmup_ratio=0.0, weight_decay=0.0, max_grad_norm=1.0, valid_examples=None)
    info = Trainer(latent, tok, cfg, tmp_path, "cpu", seed=0, mixed_precision="no",
                   stage="test", objective=objective).fit(
        [train], latent_task(codec, ex, start))
    assert info["steps_run"] == 1
    assert info["train_means"]["aligned_share"] == pytest.approx(n_hand / 5)
    assert info["train_means"]["mean_n"] == pytest.approx(3.0)
    step, window = info["train_curve"][0]
    assert step == 1 and window["aligned_share"] == pytest.approx(0.6) and "loss" in window
    line = json.loads((tmp_path / "train_log.jsonl").read_text().splitlines()[0])
    assert line["step"] == 1 and line["examples"] == 5
    assert line["aligned_share"] == pytest.approx(0.6)
    assert list((tmp_path / "tensorboard").iterdir())


def test_the_race_releases_the_fits_three_models():
    """Before Figure 3's race trains a fourth model, the fit's final, Stage-2 and Stage-1
    models give up their weights (meta device), a model shared by two fields once."""
    from types import SimpleNamespace

    from methods.lasar.studies import release_models
    final, stage1 = torch.nn.Linear(256, 256), torch.nn.Linear(256, 256)
    fitted = SimpleNamespace(model=final, stage2=final, base=stage1)     # RL off: model = stage2
    release_models(fitted)
    assert all(p.is_meta for m in (final, stage1) for p in m.parameters())
