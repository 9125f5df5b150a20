"""The template teacher's chain (GREAM's headed steps, paper Appendix E.2), its denoised-history
rule, the share of examples with item text, the segmentation of headed chains, and the labels
those chains give on real Sports CoTs (Table 8)."""
import logging

import numpy as np
import pytest

from protocol.artifact import digest
from methods.lasar.config import TeacherConfig
from methods.lasar.item_text import category_diversity, item_text_share
from methods.lasar.segment import is_heading, segment_cots
from methods.lasar.teacher import (STEP_HEADINGS, TEMPLATE_VERSION, needs_denoised_history,
                                   teacher_inputs, template_cot, warn_without_item_text)

from .conftest import real_data_dir


def _beauty_like():
    """A Beauty-shaped catalog: titles, brands, category paths under the root 'Beauty'."""
    rows = [("Hydrating Serum with Hyaluronic Acid", "Glow", "Skin Care", "Serums"),
            ("Rosehip Facial Oil", "Glow", "Skin Care", "Oils"),
            ("Cooling Eye Gel", "Eyes Co", "Skin Care", "Eye Gels"),
            ("Anti-Aging Night Moisturizer", "Glow", "Skin Care", "Night Creams"),
            ("Gentle Foaming Cleanser", "Glow", "Skin Care", "Cleansers"),
            ("Red Nail Lacquer", "OPI", "Makeup", "Nail Polish"),
            ("Volumizing Shampoo", "Hairy", "Hair Care", "Shampoos"),
            ("Matte Lipstick", "Lips", "Makeup", "Lipstick"),
            ("Clay Face Mask", "Mud", "Skin Care", "Masks")]
    return [{"title": t, "brand": b, "categories": ["Beauty", area, leaf], "attributes": None,
             "keywords": None} for t, b, area, leaf in rows]


def test_chain_has_the_three_headed_steps_then_the_recommendation_from_item_text():
    """Appendix E.2's structure: each step a heading line and a paragraph, in order, then the
    recommendation, which comes last; the content is the items' text (titles, brands, leaf
    categories, areas below the catalog root), the same every call."""
    recs = _beauty_like()
    cot = template_cot([0, 1, 2, 3], 4, recs)
    lines = cot.splitlines()
    assert lines[0::2][:3] == list(STEP_HEADINGS) == [
        "Step 1: Extraction of Behavioral Evidence", "Step 2: Modeling of Latent Preferences",
        "Step 3: Inference of User Intent and Goal Formulation"]
    assert len(lines) == 7 and lines[-1].startswith("Recommendation: ")
    assert "Hydrating Serum with Hyaluronic Acid" in lines[1]        # a history title
    assert "Serums" in lines[1] and "Skin Care" in lines[1] and "Glow" in lines[1]
    assert "Beauty" not in cot                                       # the root says nothing
    assert "Loyalty to Glow" in lines[3]                             # 3 of 4 by one brand
    assert "Cleansers" in lines[5]                                   # the next product type
    assert lines[-1] == "Recommendation: Gentle Foaming Cleanser by Glow, a Cleansers item."
    assert template_cot([0, 1, 2, 3], 4, recs) == cot
    # one purchase: no loyalty or spread to speak of, still the three steps
    one = template_cot([5], 7, recs).splitlines()
    assert one[0::2][:3] == list(STEP_HEADINGS) and one[-1].startswith("Recommendation: ")
    assert "Red Nail Lacquer" in one[1] and "Loyalty" not in one[3] and "Brands" not in one[1]


def test_denoised_history_only_for_longer_histories_with_noise():
    """GREAM's fifth part appears only for a history longer than E.2's example (5+ items)
    that has both items related to the target (product type, area or brand) and unrelated
    ones; it names only the related items and comes right before the recommendation."""
    recs = _beauty_like()
    assert not needs_denoised_history([True, False, True, False])          # 4 items: short
    assert needs_denoised_history([True, False, True, False, True])
    assert not needs_denoised_history([True] * 6) and not needs_denoised_history([False] * 6)
    short = template_cot([0, 5, 6, 1], 4, recs)                            # noise, 4 items
    assert "Denoised history" not in short
    long = template_cot([0, 5, 6, 1, 7, 2], 4, recs).splitlines()          # 6 items, 3 noisy
    assert long[-2].startswith("Denoised history: ") and long[-1].startswith("Recommendation")
    assert "Rosehip Facial Oil" in long[-2] and "Red Nail Lacquer" not in long[-2]
    assert "Volumizing Shampoo" not in long[-2] and "3 unrelated purchases" in long[-2]
    same = template_cot([0, 1, 2, 3, 8, 0], 4, recs)                       # all Skin Care
    assert "Denoised history" not in same


def test_item_text_share_and_the_warning_without_item_text(caplog):
    """0.0 where no history item has text (Instruments), 1.0 where every one has; the
    template and local teachers then warn once that the anchors carry no item information and
    name the data-convert route; the import teacher (CoTs from elsewhere) does not."""
    bare = [{"item_id": str(i), "title": None, "brand": None, "categories": None,
             "attributes": None, "keywords": None} for i in range(6)]
    hists = [[0, 1], [2, 3, 4], [5]]
    assert item_text_share(hists, bare) == 0.0
    assert item_text_share(hists, _beauty_like()) == 1.0
    partial = bare[:5] + [{"keywords": "tent"}]
    assert item_text_share(hists, partial) == pytest.approx(1 / 3)
    assert len({template_cot(h[:-1] or h, h[-1], bare) for h in ([0, 1], [2, 3], [4, 5])}) == 1
    template = TeacherConfig("template", None, None, 8, 160)
    with caplog.at_level(logging.WARNING, logger="methods.lasar.teacher"):
        assert warn_without_item_text(0.0, template)
        assert not warn_without_item_text(1.0, template)
        assert not warn_without_item_text(0.0, TeacherConfig("import", "x.jsonl", None, 8, 160))
    assert len(caplog.records) == 1
    msg = caplog.records[0].getMessage()
    assert "no item information" in msg and "python -m benchmark data convert" in msg


def test_template_version_keys_the_cots():
    """The template's CoTs are keyed by TEMPLATE_VERSION; its output on a fixed history is
    pinned here, so a change of the text without a new version fails."""
    recs = _beauty_like()
    out = [template_cot([0, 5, 6, 1, 7, 2], 4, recs), template_cot([3], 8, recs)]
    pinned = {2: "0b9c51cc9cc87ba7"}
    assert digest(out) == pinned[TEMPLATE_VERSION], (
        "the template's text changed: bump TEMPLATE_VERSION (methods/lasar/teacher.py) and pin "
        f"the new digest {digest(out)}")
    got = teacher_inputs(TeacherConfig("template", None, None, 8, 160))["version"]
    assert got == TEMPLATE_VERSION


# Appendix E.2's example chain, as printed in the paper
E2_CHAIN = ("Step 1: Extraction of Behavioral Evidence\n"
            "Product types: Hydrating serum (hyaluronic acid), facial oils (rosehip, argan, emu), "
            "eye gel, anti-aging moisturizer. Key concerns: Dryness, fine lines, wrinkles, dark "
            "circles, puffiness, uneven tone; emphasis on anti-aging and deep hydration. "
            "Ingredient preferences: Natural/organic, cold-pressed, unrefined oils; hyaluronic "
            "acid; vitamin E; gentle, non-greasy formulas.\n"
            "Step 2: Modeling of Latent Preferences\n"
            "Natural, clean, and gentle formulations for sensitive/dry skin. Multi-benefit, "
            "anti-aging products that hydrate, brighten, and improve texture. Lightweight, "
            "fast-absorbing, non-greasy textures. Value in larger sizes or long-lasting products.\n"
            "Step 3: Inference of User Intent and Goal Formulation\n"
            "The user is building a comprehensive anti-aging, hydrating routine. With serum, "
            "moisturizer, eye gel, and oils in place, the next logical addition is a gentle, "
            "natural cleanser to prep skin without stripping moisture, ideally with soothing "
            "botanicals and hyaluronic acid.\n"
            "Recommendation: <a_125|><b_109|><c_135|><d_125|>")


def test_a_bare_heading_opens_the_segment_after_it(monkeypatch):
    """With every neighbour dissimilar (orthogonal embeddings), each sentence is a segment,
    except a heading, which joins the sentence after it (two headings in a row join both);
    the paper's own chain (Appendix E.2), with MiniLM at the configured 0.2, is its three
    steps and the recommendation line."""
    import methods.lasar.segment as seg
    assert is_heading("Step 2: Modeling of Latent Preferences") and is_heading("**Step 1:**")
    assert is_heading("Key points:") and not is_heading("Step 1: the user bought a tent.")
    assert not is_heading("Recommendation: <a_1|>") and not is_heading("a plain short line")
    # a local model's step lines without periods say something: content, not headings
    for line in ("Step 1: The user bought a tent and a camp stove",
                 "Step 2: Prefers lightweight camping gear", "Step 3: Next is lighting for the "
                 "campsite"):
        assert not is_heading(line), line
    assert is_heading("Step 3: Inference of User Intent and Goal Formulation")

    def orthogonal(sents, spec, batch_size=128):
        uniq = sorted(set(sents))
        return {s: k for k, s in enumerate(uniq)}, np.eye(len(uniq), dtype=np.float32)
    with monkeypatch.context() as m:
        m.setattr(seg, "embed_unique", orthogonal)
        got = segment_cots(["Step 1: A\nfoo. bar.\nStep 2: B\n## C\nbaz.\nStep 3: D"], "x", 0.2)
    assert got == [["Step 1: A foo.", "bar.", "Step 2: B ## C baz.", "Step 3: D"]]
    e2 = segment_cots([E2_CHAIN], "minilm", 0.2)[0]
    assert [s.split(":")[0] for s in e2] == ["Step 1", "Step 2", "Step 3", "Recommendation"]


def test_labels_on_real_sports_cots_like_table8():
    """Template CoTs of 200 real Sports training examples (the pool's rule, seed 0), segmented
    with MiniLM at the configured threshold: the labels sit on 3-5 with mode 3 or 4 (Table 8:
    3, 4, 5 segments for 83.4%, 16.3%, 0.2%), longer histories get more segments, and the
    samples above the mode have longer, more diverse histories (Table 8's trend). Also the
    item-text share: 1.0 on Sports, 0.0 on Instruments."""
    data = real_data_dir()
    if data is None:
        pytest.skip("../shared/datasets not present")
    from protocol.config import read_yaml
    from methods.lasar.pool import pool_examples
    from recdata import load_dataset
    from recdata.split import make_split
    from .conftest import REPO
    seg = read_yaml(REPO / "methods" / "configs" / "lasar.yaml")["segmentation"]
    ds = load_dataset("sports", data)
    ex = pool_examples(make_split(ds, window=20).train, 200, 0)
    hists = ex.histories()
    assert item_text_share(hists, ds.items) == 1.0
    cots = [template_cot(h, t, ds.items) for h, t in zip(hists, ex.targets)]
    labels = np.clip([len(s) for s in segment_cots(cots, seg["embedder"], seg["threshold"])],
                     1, 8)
    share = np.bincount(labels, minlength=9)[1:] / len(labels)
    assert share[2:5].sum() >= 0.85, share                          # N = 3..5
    mode = int(np.argmax(share)) + 1
    assert mode in (3, 4), share
    L = ex.lengths
    assert labels[L >= 7].mean() > labels[L <= 2].mean()
    div = np.array([category_diversity(h, ds.items) for h in hists])
    above = labels > mode
    assert L[above].mean() > L[labels == mode].mean()
    assert div[above].mean() > div[labels == mode].mean()
    if (data / "instruments" / "sequences.txt").is_file():
        inst = load_dataset("instruments", data)
        ex_i = pool_examples(make_split(inst, window=20).train, 200, 0)
        assert item_text_share(ex_i.histories(), inst.items) == 0.0
