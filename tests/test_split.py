import numpy as np

from recdata import load_dataset, make_split
from recdata.split import sample_users

from .conftest import write_dataset


def test_leave_one_out_with_window(tmp_path):
    d = write_dataset(tmp_path, "toy", n_users=3, n_items=40, min_len=4, max_len=4)
    (d / "sequences.txt").write_text("u1 1 2 3 4 5 6\nu2 7 8 9\n")
    ds = load_dataset("toy", tmp_path)
    sp = make_split(ds, window=3)
    idx = lambda ids: [ds.item_index[str(i)] for i in ids]
    # u1: train targets at positions 1..3 (items 2,3,4), valid 5, test 6; u2: valid 8, test 9
    assert sp.train.targets.tolist() == idx([2, 3, 4])
    assert [h.tolist() for h in sp.train.histories()] == [idx([1]), idx([1, 2]), idx([1, 2, 3])]
    assert sp.valid.targets.tolist() == idx([5, 8])
    assert [h.tolist() for h in sp.valid.histories()] == [idx([2, 3, 4]), idx([7])]
    assert sp.test.targets.tolist() == idx([6, 9])
    assert [h.tolist() for h in sp.test.histories()] == [idx([3, 4, 5]), idx([7, 8])]
    assert sp.test.history[1].tolist() == idx([7, 8]) + [-1]       # padded at the end


def test_counts_follow_the_protocol(toy_data):
    ds = load_dataset(toy_data[1], toy_data[0])
    sp = make_split(ds)
    assert len(sp.test) == len(sp.valid) == ds.n_users
    assert len(sp.train) == ds.n_interactions - 3 * ds.n_users


def test_user_subsample_is_seeded():
    a, b = sample_users(1000, 50, 3), sample_users(1000, 50, 3)
    assert np.array_equal(a, b) and len(np.unique(a)) == 50
    assert sample_users(1000, None, 3) is None
