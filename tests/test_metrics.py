import math

import numpy as np
import pytest

from protocol.metrics import per_user, summarize, target_ranks


def test_ranks_are_one_based_and_zero_when_absent():
    topk = np.array([[5, 3, 9], [1, 2, 3], [7, 8, 9]])
    assert target_ranks(topk, np.array([3, 1, 4])).tolist() == [2, 1, 0]


def test_hr_and_ndcg_match_hand_computed_values():
    ranks = np.array([1, 3, 6, 11, 25, 0])
    m = per_user(ranks)
    # NDCG@K = 1/log2(r+1) for r <= K
    assert m["NDCG@5"].tolist() == pytest.approx([1.0, 0.5, 0, 0, 0, 0])
    assert m["NDCG@10"].tolist() == pytest.approx([1.0, 0.5, 1 / math.log2(7), 0, 0, 0])
    assert m["NDCG@20"].tolist() == pytest.approx(
        [1.0, 0.5, 1 / math.log2(7), 1 / math.log2(12), 0, 0])
    assert m["HR@5"].tolist() == [1, 1, 0, 0, 0, 0]
    assert m["HR@10"].tolist() == [1, 1, 1, 0, 0, 0]
    assert m["HR@20"].tolist() == [1, 1, 1, 1, 0, 0]
    s = summarize(ranks)
    assert s["HR@10"] == pytest.approx(0.5)
    assert s["NDCG@5"] == pytest.approx(1.5 / 6)
    assert s["n_users"] == 6
    assert list(s)[:6] == ["NDCG@5", "NDCG@10", "NDCG@20", "HR@5", "HR@10", "HR@20"]
