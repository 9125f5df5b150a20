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
`unpaired_difference` the same for two independent samples; `seed_difference` the same over
several trained seeds (a two-level bootstrap: seeds, then users inside each drawn seed) with
the t-interval over the per-seed differences; `holm` the Holm-adjusted p-values of a claim's
comparisons; `bootstrap_interval` and `wilson_interval` the 95% intervals of means that figures
draw as error bars.

One error rate throughout the claims: two-sided 95% intervals, one-sided p at ALPHA_ONE_SIDED
= 0.025 (the same test: the percentile interval excludes zero exactly when under 2.5% of the
resamples lie on the other side). Table 1's star keeps the paper's own convention (one-sided
p < 0.05 against each baseline) and says so.
"""
from statistics import NormalDist

import numpy as np

Z_975 = NormalDist().inv_cdf(0.975)           # two-sided alpha 0.05
Z_80 = NormalDist().inv_cdf(0.80)             # power 0.8
ALPHA_ONE_SIDED = 0.025                       # = two-sided 0.05: the claims' error rate
PAPER_ALPHA = 0.05                            # Table 1's star: the paper's one-sided p < 0.05
MIN_SEEDS = 3                                 # a seed-pooled verdict rests on at least 3 seeds
# "untestable here": a claim whose mechanism had no signal in the run is not judged. Two
# measurements, set once for every claim: the share of the users whose target rank differs
# between the rows a comparison sets side by side (below MIN_CHANGED_SHARE the rows are the
# same model for the users, whatever the interval says), and for a claim about what RL
# learned, the share of RL's rollout groups whose rewards vary (GRPO's advantage is zero in a
# group whose G rewards are equal, so such a group gives no gradient; below MIN_RL_SIGNAL RL
# had almost nothing to learn from).
MIN_CHANGED_SHARE = 0.02
MIN_RL_SIGNAL = 0.05


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
            "p": float((resampled <= 0).mean()), "p_against": float((resampled >= 0).mean()),
            "mde": mde(se), "n": n}


def paired_difference(pairs, n_resamples=10000, seed=2026):
    """pairs: {name: (a, b)}, per-user arrays over the same n users in the same order, each
    claimed as "a above b". All pairs share one set of resamples of the users. -> {name:
    {"diff", "lo", "hi", "p", "mde", "n"}}:

      diff    mean(a - b)
      lo, hi  95% percentile bootstrap interval of diff (2.5th and 97.5th percentiles of the
              resampled mean differences, numpy's linear quantile)
      p       one-sided p in the claimed direction: the share of resamples whose mean
              difference is <= 0 (as paired_bootstrap)
      p_against  one-sided p in the other direction (the share >= 0): what a contradiction
              is judged on
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


def holm(pvalues):
    """Holm's step-down adjustment of a family's p-values (in their order): the i-th smallest
    p becomes max over j <= i of min(1, (m - j + 1) p_(j)). Rejecting where the adjusted p is
    below alpha keeps the family-wise error rate at alpha."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = stepped
    return out.tolist()


def seed_difference(pairs_by_seed, n_resamples=10000, seed=2026):
    """Several trained seeds of two methods scored on the same users: pairs_by_seed = [{name:
    (a, b)} per seed], per-user arrays over the same n users, in the same order, in every seed;
    "a above b". A two-level bootstrap: each resample draws S seeds with replacement (what
    moves when a model is retrained) and n users with replacement (which users were tested);
    its statistic is the mean over the drawn seeds of those users' mean a - b. The users are
    crossed with the seeds (every seed was scored on the same users), so one draw of users
    serves all the drawn seeds of a resample: drawing users anew inside each drawn seed would
    treat them as nested and divide the users' share of the variance by S.
    -> {name: {"diff", "lo", "hi", "p", "p_against", "n", "seeds", "per_seed", "t_lo",
    "t_hi"}}: diff the mean over seeds of the per-seed mean difference (= the seed-pooled
    difference), lo/hi the 2.5th/97.5th percentiles of the resampled statistic, p (p_against)
    the share <= 0 (>= 0), per_seed the S per-seed differences, t_lo/t_hi the t-interval over
    them (mean +- t_{0.975, S-1} sd / sqrt(S); None with one seed)."""
    from scipy.stats import t as student_t
    names = list(pairs_by_seed[0]) if pairs_by_seed else []
    if not names:
        return {}
    S, C = len(pairs_by_seed), len(names)
    # d: (S, n, C) per-user differences of every seed and comparison
    d = np.stack([np.stack([np.asarray(ps[k][0], float) - np.asarray(ps[k][1], float)
                            for k in names], axis=1) for ps in pairs_by_seed])
    n = d.shape[1]
    drawn = np.random.default_rng([seed, 1]).integers(0, S, size=(n_resamples, S))
    weight = np.stack([np.bincount(r, minlength=S) for r in drawn]) / S    # (R, S)
    flat = d.transpose(1, 0, 2).reshape(n, S * C)                          # (n, S * C)
    res, row = np.empty((n_resamples, C)), 0
    for counts in bootstrap_counts(n, n_resamples, seed):                  # the users
        means = (counts @ flat / n).reshape(len(counts), S, C)             # (chunk, S, C)
        res[row:row + len(counts)] = np.einsum("rs,rsc->rc", weight[row:row + len(counts)],
                                               means)
        row += len(counts)
    per_seed = d.mean(1)                                                    # (S, C)
    out = {}
    for i, k in enumerate(names):
        lo, hi = np.quantile(res[:, i], [0.025, 0.975])
        x = per_seed[:, i]
        t_lo = t_hi = None
        if S > 1:
            half = student_t.ppf(0.975, S - 1) * x.std(ddof=1) / np.sqrt(S)
            t_lo, t_hi = float(x.mean() - half), float(x.mean() + half)
        out[k] = {"diff": float(x.mean()), "lo": float(lo), "hi": float(hi),
                  "p": float((res[:, i] <= 0).mean()),
                  "p_against": float((res[:, i] >= 0).mean()), "n": n, "seeds": S,
                  "per_seed": [float(v) for v in x], "t_lo": t_lo, "t_hi": t_hi}
    return out
