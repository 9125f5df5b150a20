"""Leave-one-out split (PROTOCOL section 1).

Per user, in sequence order: the last item is the test target, the second-last the validation
target, and every earlier position t >= 1 is a training example with history = the items
before t. Every history is the last `window` items before its target (20 for every method).
"""
from dataclasses import dataclass

import numpy as np


@dataclass
class Examples:
    """A batch of (user, history, target) examples as arrays.

    users: (n,) user index; targets: (n,) item index; history: (n, window) item indices,
    oldest first, left-aligned and padded with -1 at the end; lengths: (n,) valid history length.
    """
    users: np.ndarray
    targets: np.ndarray
    history: np.ndarray
    lengths: np.ndarray

    def __len__(self):
        return len(self.targets)

    def histories(self):
        """List of int arrays, one per example (unpadded)."""
        return [h[:n] for h, n in zip(self.history, self.lengths)]

    def subset(self, idx):
        return Examples(self.users[idx], self.targets[idx], self.history[idx], self.lengths[idx])


@dataclass
class Split:
    train: Examples
    valid: Examples
    test: Examples
    window: int


def _examples(rows, window):
    n = len(rows)
    users = np.empty(n, dtype=np.int64)
    targets = np.empty(n, dtype=np.int64)
    history = np.full((n, window), -1, dtype=np.int64)
    lengths = np.empty(n, dtype=np.int64)
    for k, (u, seq, t) in enumerate(rows):
        h = seq[max(0, t - window):t]
        users[k], targets[k], lengths[k] = u, seq[t], len(h)
        history[k, :len(h)] = h
    return Examples(users, targets, history, lengths)


def make_split(dataset, window=20, users=None):
    """Build the split. `users`: optional array of user indices to keep (smoke subsampling);
    the item catalog always stays whole (ranking is over every item)."""
    keep = range(dataset.n_users) if users is None else users
    train, valid, test = [], [], []
    for u in keep:
        seq = dataset.sequences[u]
        L = len(seq)
        train.extend((u, seq, t) for t in range(1, L - 2))
        valid.append((u, seq, L - 2))
        test.append((u, seq, L - 1))
    return Split(_examples(train, window), _examples(valid, window), _examples(test, window),
                 window)


def sample_users(n_users, max_users, seed):
    """A fixed-seed subsample of user indices (sorted), or None for all users."""
    if not max_users or max_users >= n_users:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_users, size=max_users, replace=False))
