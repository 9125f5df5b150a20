"""Per-user rank, HR@K and NDCG@K (PROTOCOL section 4, paper Appendix C, Eq. 7-8).

rank r of the target in the top-k list (1 = best, 0 = not in the list);
HR@K = 1[1 <= r <= K]; NDCG@K = 1/log2(r + 1) if 1 <= r <= K else 0.
"""
import numpy as np

METRIC_ORDER = ("NDCG@5", "NDCG@10", "NDCG@20", "HR@5", "HR@10", "HR@20")


def target_ranks(topk, targets):
    """topk: (n, k) item indices best first; targets: (n,). -> (n,) 1-based rank, 0 if absent."""
    topk = np.asarray(topk)
    hit = topk == np.asarray(targets)[:, None]                     # (n, k)
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, 0)


def per_user(ranks, ks=(5, 10, 20)):
    """{metric name: (n,) float array}, names in the paper's column order."""
    ranks = np.asarray(ranks)
    found = ranks > 0
    gain = np.zeros(len(ranks))
    gain[found] = 1.0 / np.log2(ranks[found] + 1)
    out = {}
    for k in ks:
        out[f"NDCG@{k}"] = np.where(found & (ranks <= k), gain, 0.0)
    for k in ks:
        out[f"HR@{k}"] = (found & (ranks <= k)).astype(float)
    return out


def summarize(ranks, ks=(5, 10, 20)):
    """metrics.json content: the mean of each per-user metric, plus n_users."""
    out = {name: float(v.mean()) for name, v in per_user(ranks, ks).items()}
    out["n_users"] = int(len(ranks))
    return out
