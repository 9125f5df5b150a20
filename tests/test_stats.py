import numpy as np
import pytest

from protocol.stats import (bootstrap_counts, bootstrap_interval, paired_bootstrap,
                            paired_difference, unpaired_difference, wilson_interval)


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


def _brute_force_means(d, B, seed):
    """Mean of d over each of B resamples drawn with bootstrap_counts' index draws, one
    resample at a time."""
    draw = np.random.default_rng(seed)
    out = []
    for start in range(0, B, 256):
        for row in draw.integers(0, len(d), size=(min(256, B - start), len(d))):
            out.append(sum(d[i] for i in row) / len(d))
    return np.array(out)


def _percentile(values, q):
    """Linear-interpolation percentile by hand: position q * (B - 1) in the sorted values."""
    s = sorted(values)
    pos = q * (len(s) - 1)
    i = int(pos)
    return s[i] + (pos - i) * (s[min(i + 1, len(s) - 1)] - s[i])


def test_paired_difference_equals_a_loop_over_resamples():
    rng = np.random.default_rng(4)
    n, B = 30, 600
    a, b = rng.integers(0, 2, n).astype(float), rng.integers(0, 2, n).astype(float)
    c, e = rng.random(n), rng.random(n) * 0.8
    res = paired_difference({"hr": (a, b), "ndcg": (c, e)}, n_resamples=B, seed=11)
    for name, (x, y) in (("hr", (a, b)), ("ndcg", (c, e))):
        d = x - y
        means = _brute_force_means(d, B, 11)
        r = res[name]
        assert r["diff"] == pytest.approx(sum(d) / n)
        assert r["p"] == pytest.approx(sum(m <= 0 for m in means) / B)
        assert (r["lo"], r["hi"]) == pytest.approx((_percentile(means, 0.025),
                                                    _percentile(means, 0.975)))
        sd = (sum((v - d.mean()) ** 2 for v in d) / (n - 1)) ** 0.5
        assert r["mde"] == pytest.approx((1.959964 + 0.841621) * sd / n ** 0.5, rel=1e-5)
        assert r["n"] == n


def test_mde_by_hand():
    """d = [1, 0, 0, 1]: mean 0.5, sd (ddof 1) sqrt(1/3), MDE 2.801585 * 0.57735 / 2."""
    r = paired_difference({"x": (np.array([1., 0, 1, 1]), np.array([0., 0, 1, 0]))},
                          n_resamples=100, seed=1)["x"]
    assert r["diff"] == 0.5
    assert r["mde"] == pytest.approx(2.801585 * (1 / 3) ** 0.5 / 2, rel=1e-5)
    same = paired_difference({"x": (np.zeros(50), np.zeros(50))}, n_resamples=100, seed=1)["x"]
    assert same["mde"] is None and same["lo"] == same["hi"] == 0 and same["p"] == 1.0


def test_interval_excludes_zero_only_for_a_clear_difference():
    n = 1000
    rng = np.random.default_rng(5)
    base = (rng.random(n) < 0.05).astype(float)
    better = base.copy()
    better[rng.choice(np.flatnonzero(base == 0), 80, replace=False)] = 1.0   # +0.08
    close = base.copy()
    close[rng.choice(np.flatnonzero(base == 0), 2, replace=False)] = 1.0     # +0.002
    r = paired_difference({"clear": (better, base), "close": (close, base),
                           "loss": (base, better)}, n_resamples=2000, seed=3)
    assert r["clear"]["lo"] > 0 and r["clear"]["p"] == 0.0
    assert r["close"]["lo"] <= 0 < r["close"]["hi"]
    assert r["close"]["mde"] > r["close"]["diff"]
    assert r["loss"]["hi"] < 0 and r["loss"]["p"] == 1.0


def test_unpaired_difference_equals_two_loops():
    rng = np.random.default_rng(6)
    a, b = rng.integers(1, 9, 25).astype(float), rng.integers(1, 5, 40).astype(float)
    r = unpaired_difference(a, b, n_resamples=500, seed=9)
    means = _brute_force_means(a, 500, 9) - _brute_force_means(b, 500, 10)
    assert r["diff"] == pytest.approx(a.mean() - b.mean())
    assert r["p"] == pytest.approx((means <= 0).mean())
    assert (r["lo"], r["hi"]) == pytest.approx((_percentile(means, 0.025),
                                                _percentile(means, 0.975)))
    se = (a.var(ddof=1) / 25 + b.var(ddof=1) / 40) ** 0.5
    assert r["mde"] == pytest.approx(2.801585 * se, rel=1e-5) and r["n"] == (25, 40)


def test_bootstrap_interval_equals_a_loop():
    rng = np.random.default_rng(7)
    x, y = rng.random(20), (rng.random(20) < 0.3).astype(float)
    iv = bootstrap_interval({"x": x, "y": y}, n_resamples=300, seed=2)
    for name, v in (("x", x), ("y", y)):
        means = _brute_force_means(v, 300, 2)
        assert iv[name] == pytest.approx((_percentile(means, 0.025), _percentile(means, 0.975)))


def test_wilson_interval_textbook_values():
    """5 of 10: [0.2366, 0.7634]; 0 of 10: [0, 3.8415 / 13.8415]."""
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 1.959964 ** 2 / (10 + 1.959964 ** 2)))
    assert wilson_interval(10, 10) == pytest.approx((10 / (10 + 1.959964 ** 2), 1.0))
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_two_level_bootstrap_equals_a_loop_over_seeds_and_users():
    """seed_difference against brute force: each resample draws S seeds (numpy's generator
    seeded [seed, 1]) and one set of n users (bootstrap_counts' draws), and averages the drawn
    seeds' mean differences over those users; the t-interval over the per-seed differences by
    hand."""
    from protocol.stats import seed_difference
    rng = np.random.default_rng(8)
    S, n, B = 3, 25, 400
    a = [rng.integers(0, 2, n).astype(float) for _ in range(S)]
    b = [rng.integers(0, 2, n).astype(float) * 0.5 for _ in range(S)]
    res = seed_difference([{"x": (a[s], b[s])} for s in range(S)], n_resamples=B, seed=5)["x"]
    seeds = np.random.default_rng([5, 1]).integers(0, S, size=(B, S))
    users = np.random.default_rng(5)
    stats = []
    for start in range(0, B, 256):
        for r, idx in enumerate(users.integers(0, n, size=(min(256, B - start), n))):
            drawn = seeds[start + r]
            stats.append(sum(sum(a[s][i] - b[s][i] for i in idx) / n for s in drawn) / S)
    per_seed = [float((a[s] - b[s]).mean()) for s in range(S)]
    assert res["per_seed"] == pytest.approx(per_seed) and res["seeds"] == S
    assert res["diff"] == pytest.approx(sum(per_seed) / S)
    assert res["p"] == pytest.approx(sum(v <= 0 for v in stats) / B)
    assert (res["lo"], res["hi"]) == pytest.approx((_percentile(stats, 0.025),
                                                    _percentile(stats, 0.975)))
    sd = (sum((v - res["diff"]) ** 2 for v in per_seed) / (S - 1)) ** 0.5
    half = 4.302653 * sd / S ** 0.5                                # t_{0.975, 2}
    assert (res["t_lo"], res["t_hi"]) == pytest.approx((res["diff"] - half,
                                                        res["diff"] + half), rel=1e-5)


def test_seed_variance_widens_the_interval():
    """Seeds that disagree (the same users, per-seed differences +0.05, -0.03, +0.04): the
    users-only pooled interval excludes zero, the two-level one does not."""
    from protocol.stats import seed_difference
    n = 2000
    rng = np.random.default_rng(9)
    base = (rng.random(n) < 0.2).astype(float)
    pairs = []
    for shift in (0.05, -0.03, 0.04):
        moved = base.copy()
        k = int(abs(shift) * n)
        pool = np.flatnonzero(base == (0 if shift > 0 else 1))
        moved[rng.choice(pool, k, replace=False)] = 1.0 if shift > 0 else 0.0
        pairs.append({"x": (moved, base)})
    pooled = paired_difference({"x": (np.mean([p["x"][0] for p in pairs], 0), base)},
                               n_resamples=2000, seed=1)["x"]
    two = seed_difference(pairs, n_resamples=2000, seed=1)["x"]
    assert two["diff"] == pytest.approx(pooled["diff"])
    assert pooled["lo"] > 0 and two["lo"] < 0 < two["hi"]


def test_holm_against_a_hand_computation():
    """p = (0.01, 0.04, 0.03, 0.005): sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02,
    0.03, 0.06, 0.04, made monotone: 0.02, 0.03, 0.06, 0.06; back in the given order."""
    from protocol.stats import holm
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.6, 0.5]) == pytest.approx([1.0, 1.0])          # capped at 1
    assert holm([0.02]) == [0.02] and holm([]) == []
