"""Paired bootstrap over test users (PROTOCOL section 4, paper Section 3.2).

One-sided p for "method A beats baseline B" on a metric = the share of resamples in which A's
mean is not above B's. All comparisons share one set of resamples (drawn once from a fixed
seed), so every p-value in a table comes from the same bootstrap world.

scipy.stats.bootstrap resamples one statistic at a time and returns intervals; here the same
resamples serve every (baseline, metric) pair at once, as weighted sums over users: a resample
is a multinomial count vector c (sum n), and its mean difference is c @ d / n. Chunks keep the
(resamples x users) counts within memory.

`paired_difference` gives, for every claim's "A beats B" (PROTOCOL section 4, "Claims and
ablations"), the difference, its 95% interval, p and the minimum detectable effect;
`unpaired_difference` the same for two independent samples; `bootstrap_interval` and
`wilson_interval` the 95% intervals of means that figures draw as error bars.
"""
from statistics import NormalDist

import numpy as np

Z_975 = NormalDist().inv_cdf(0.975)           # two-sided alpha 0.05
Z_80 = NormalDist().inv_cdf(0.80)             # power 0.8


def bootstrap_counts(n_users, n_resamples, seed, chunk=256):
    """Yield (c, n_users) integer count matrices, n_resamples rows in all."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_resamples:
        c = min(chunk, n_resamples - done)
        idx = rng.integers(0, n_users, size=(c, n_users))
        flat = idx + (np.arange(c) * n_users)[:, None]                 # row-offset indices
        yield np.bincount(flat.ravel(), minlength=c * n_users).reshape(c, n_users)
        done += c


def resampled_means(d, n_resamples, seed):
    """d: (n, C) per-user values -> (n_resamples, C) column means over the same resamples of
    the n users."""
    d = np.asarray(d, dtype=np.float64)
    n = d.shape[0]
    return np.concatenate([counts @ d / n for counts in bootstrap_counts(n, n_resamples, seed)])


def paired_bootstrap(a, bs, n_resamples=10000, seed=2026):
    """a: {metric: (n,) per-user values of the method}; bs: {baseline: {metric: (n,)}}.
    -> {baseline: {metric: one-sided p}} with p = P*(mean_a <= mean_b)."""
    metrics = list(a)
    names = list(bs)
    if not names:
        return {}
    # d: (n, B*M) per-user differences A - B, one column per (baseline, metric)
    d = np.stack([a[m] - bs[b][m] for b in names for m in metrics], axis=1)
    p = (resampled_means(d, n_resamples, seed) <= 0).mean(axis=0)
    return {b: {m: float(p[i * len(metrics) + j]) for j, m in enumerate(metrics)}
            for i, b in enumerate(names)}


def mde(se):
    """Minimum detectable effect: (z_0.975 + z_0.8) * se, the smallest true difference a
    two-sided test at alpha 0.05 finds with 80% power (normal approximation); None when se is
    0 (no user differs: no effect size can be detected from these data)."""
    return float((Z_975 + Z_80) * se) if se > 0 else None


def _summary(observed, resampled, se, n):
    lo, hi = np.quantile(resampled, [0.025, 0.975])
    return {"diff": float(observed), "lo": float(lo), "hi": float(hi),
            "p": float((resampled <= 0).mean()), "mde": mde(se), "n": n}


def paired_difference(pairs, n_resamples=10000, seed=2026):
    """pairs: {name: (a, b)}, per-user arrays over the same n users in the same order, each
    claimed as "a above b". All pairs share one set of resamples of the users. -> {name:
    {"diff", "lo", "hi", "p", "mde", "n"}}:

      diff    mean(a - b)
      lo, hi  95% percentile bootstrap interval of diff (2.5th and 97.5th percentiles of the
              resampled mean differences, numpy's linear quantile)
      p       one-sided p in the claimed direction: the share of resamples whose mean
              difference is <= 0 (as paired_bootstrap)
      mde     (z_0.975 + z_0.8) * sd(a - b) / sqrt(n), sd with ddof 1: the smallest true mean
              difference a two-sided test at alpha 0.05 detects with 80% power on these n
              users; None when every user's difference is the same (sd 0)
    """
    names = list(pairs)
    if not names:
        return {}
    d = np.stack([np.asarray(pairs[k][0], float) - np.asarray(pairs[k][1], float)
                  for k in names], axis=1)
    n = d.shape[0]
    if n == 0:
        raise ValueError("paired_difference: no users")
    res = resampled_means(d, n_resamples, seed)
    sd = d.std(axis=0, ddof=1) if n > 1 else np.zeros(d.shape[1])
    return {k: _summary(d[:, i].mean(), res[:, i], sd[i] / np.sqrt(n), n)
            for i, k in enumerate(names)}


def unpaired_difference(a, b, n_resamples=10000, seed=2026):
    """Two independent samples a (n_a,) and b (n_b,), "a above b": each resampled on its own
    (seeds seed and seed + 1). Same keys as paired_difference; mde uses the standard error
    sqrt(var_a / n_a + var_b / n_b) (ddof 1), n = (n_a, n_b)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("unpaired_difference: an empty sample")
    res = (resampled_means(a[:, None], n_resamples, seed)[:, 0]
           - resampled_means(b[:, None], n_resamples, seed + 1)[:, 0])
    var = sum(x.var(ddof=1) / len(x) if len(x) > 1 else 0.0 for x in (a, b))
    return _summary(a.mean() - b.mean(), res, np.sqrt(var), (len(a), len(b)))


def bootstrap_interval(columns, n_resamples=2000, seed=2026):
    """columns: {name: (n,) per-user values}, the same n for all. -> {name: (lo, hi)}, the 95%
    percentile bootstrap interval of each mean over one set of resamples of the users."""
    names = list(columns)
    if not names:
        return {}
    res = resampled_means(np.stack([np.asarray(columns[k], float) for k in names], axis=1),
                          n_resamples, seed)
    lo, hi = np.quantile(res, [0.025, 0.975], axis=0)
    return {k: (float(lo[i]), float(hi[i])) for i, k in enumerate(names)}


def wilson_interval(hits, n):
    """95% Wilson score interval of a proportion hits / n (for a hit rate known only from its
    counts); (lo, hi)."""
    if n <= 0:
        raise ValueError("wilson_interval: n must be positive")
    z2 = Z_975 ** 2
    p = hits / n
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_975 * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return (0.0 if hits == 0 else float(centre - half),
            1.0 if hits == n else float(centre + half))
