import numpy as np
import pytest

from benchmark.protocol.stats import bootstrap_counts, paired_bootstrap


def test_counts_are_resamples_of_all_users():
    rows = np.concatenate(list(bootstrap_counts(50, 700, seed=1, chunk=256)))
    assert rows.shape == (700, 50)
    assert (rows.sum(axis=1) == 50).all()


def test_p_values_equal_brute_force_resampling():
    rng = np.random.default_rng(0)
    n, B = 40, 500
    a = {"HR@10": rng.integers(0, 2, n).astype(float), "NDCG@10": rng.random(n)}
    b = {"HR@10": rng.integers(0, 2, n).astype(float), "NDCG@10": rng.random(n) * 0.9}
    p = paired_bootstrap(a, {"base": b}, n_resamples=B, seed=7)["base"]
    # brute force with the same index draws
    draw = np.random.default_rng(7)
    not_above = {m: 0 for m in a}
    for start in range(0, B, 256):
        idx = draw.integers(0, n, size=(min(256, B - start), n))
        for m in a:
            not_above[m] += int((a[m][idx].mean(1) <= b[m][idx].mean(1)).sum())
    for m in a:
        assert p[m] == pytest.approx(not_above[m] / B)


def test_clear_winner_and_ties():
    n = 200
    a = {"HR@10": np.ones(n)}
    b = {"HR@10": np.zeros(n)}
    res = paired_bootstrap(a, {"worse": b, "same": a}, n_resamples=300, seed=3)
    assert res["worse"]["HR@10"] == 0.0
    assert res["same"]["HR@10"] == 1.0            # a tie is "not above": p = 1
