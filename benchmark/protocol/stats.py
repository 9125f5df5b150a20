"""Paired bootstrap over test users (PROTOCOL section 4, paper Section 3.2).

One-sided p for "method A beats baseline B" on a metric = the share of resamples in which A's
mean is not above B's. All comparisons share one set of resamples (drawn once from a fixed
seed), so every p-value in a table comes from the same bootstrap world.

scipy.stats.bootstrap resamples one statistic at a time and returns intervals; here the same
resamples serve every (baseline, metric) pair at once, as weighted sums over users: a resample
is a multinomial count vector c (sum n), and its mean difference is c @ d / n. Chunks keep the
(resamples x users) counts within memory.
"""
import numpy as np


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


def paired_bootstrap(a, bs, n_resamples=10000, seed=2026):
    """a: {metric: (n,) per-user values of the method}; bs: {baseline: {metric: (n,)}}.
    -> {baseline: {metric: one-sided p}} with p = P*(mean_a <= mean_b)."""
    metrics = list(a)
    names = list(bs)
    if not names:
        return {}
    n = len(a[metrics[0]])
    # d: (n, B*M) per-user differences A - B, one column per (baseline, metric)
    d = np.stack([a[m] - bs[b][m] for b in names for m in metrics], axis=1).astype(np.float64)
    not_above = np.zeros(d.shape[1])
    for counts in bootstrap_counts(n, n_resamples, seed):
        diff = counts @ d / n                     # (c, B*M)
        not_above += (diff <= 0).sum(axis=0)
    p = not_above / n_resamples
    return {b: {m: float(p[i * len(metrics) + j]) for j, m in enumerate(metrics)}
            for i, b in enumerate(names)}
