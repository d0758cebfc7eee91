"""The Stacker's inner selection folds under a time-ordered `cv`.

With `cv=TimeSeriesSplit(...)` the rows are in time order, so the inner cross-validation
that chooses between "meta", "caruana" and "best" on the out-of-fold rows must also train
on earlier rows and score on later ones (a shuffled KFold there lets future rows choose
for past ones). An int cv keeps the shuffled, stratified inner folds.
"""

import numpy as np
import pytest
from sklearn.model_selection import KFold, TimeSeriesSplit

import kfuse
from kfuse.stacking import selection
from kfuse.stacking.folds import forward_folds, resolve_cv, time_ordered
from tests.stacking import time_rows, two_dense_branches

N = 120


def _data():
    return time_rows(N)


_branches = two_dense_branches


def _fit_recording(monkeypatch, cv):
    """Fit a small real Stacker; return it and what `_inner_folds` handed to `choose`."""
    calls = []
    original = selection._inner_folds

    def recording(stacker, y, rows):
        splits, reason = original(stacker, y, rows)
        calls.append((np.asarray(rows), splits, reason))
        return splits, reason

    monkeypatch.setattr(selection, "_inner_folds", recording)
    x, y = _data()
    stacker = kfuse.Stacker(_branches(), head=2, cv=cv, seed=0, verbose=0, meta_fit={"epochs": 2})
    stacker.fit(x, y)
    assert len(calls) == 1
    return stacker, y, calls[0]


def test_time_series_cv_gets_forward_in_time_inner_folds(monkeypatch):
    stacker, y, (rows, splits, reason) = _fit_recording(monkeypatch, TimeSeriesSplit(3))
    assert reason is None and stacker.selection_reason_ is None
    np.testing.assert_array_equal(rows, stacker.oof_rows_)
    assert rows[0] == N // 4  # the outer TimeSeriesSplit never holds out its first chunk
    assert len(splits) == 3
    held = np.zeros(len(rows), bool)
    for tr, te in splits:
        # positions into rows, and the training data's positions behind them: all before
        assert tr.max() < te.min() and rows[tr].max() < rows[te].min()
        assert not held[te].any()  # each OOF row held out at most once
        held[te] = True
    assert not held[: len(rows) // 4].any() and held[-1]  # the earliest chunk is never held out

    # the scores cover only the held-out rows (the earliest chunk has no inner prediction)
    names = [b.name for b in stacker.branches_]
    members = [np.asarray(stacker.features_[n], "float64")[rows] for n in names]
    labels = y[rows]
    out = np.zeros_like(members[0])
    for tr, te in splits:
        w = selection.member_weights(stacker.head_, [p[tr] for p in members], labels[tr], 1)
        out[te] = sum(wi * p[te] for wi, p in zip(w, members, strict=True))
    scored = np.flatnonzero(held)
    expected = selection.score(stacker.head_, out[scored], labels[scored])
    assert stacker.selection_scores_["best"] == pytest.approx(expected)
    assert stacker.selection_ in ("meta", "caruana", "best")


def test_int_cv_keeps_the_shuffled_stratified_inner_folds(monkeypatch):
    stacker, y, (rows, splits, reason) = _fit_recording(monkeypatch, 3)
    assert reason is None
    np.testing.assert_array_equal(rows, np.arange(N))
    expected = resolve_cv(3, y[rows], stacker.head_, stacker.seed_ + 11).splits
    assert len(splits) == len(expected) == 3
    for (tr, te), (etr, ete) in zip(splits, expected, strict=True):
        np.testing.assert_array_equal(tr, etr)
        np.testing.assert_array_equal(te, ete)
    # a partition of the OOF rows, shuffled: some training row comes after a held-out one
    np.testing.assert_array_equal(np.sort(np.concatenate([te for _, te in splits])), np.arange(len(rows)))
    assert any(tr.max() > te.min() for tr, te in splits)


class PurgedTimeSeriesSplit:
    """A splitter from elsewhere whose name says it keeps time order."""

    def split(self, x, y=None, groups=None):
        return TimeSeriesSplit(2).split(x)

    def get_n_splits(self, x=None, y=None, groups=None):
        return 2


def test_which_splitters_are_time_ordered():
    assert time_ordered(TimeSeriesSplit(3)) and time_ordered(PurgedTimeSeriesSplit())
    for cv in (3, 0.25, "prefit", KFold(3), None):
        assert not time_ordered(cv), cv


def test_forward_folds_are_positions_into_rows_in_time_order():
    rows = np.array([50, 10, 40, 20, 30, 60, 90, 70, 80])  # positions into the training data
    splits, reason = forward_folds(3, rows)
    assert reason is None and len(splits) == 3
    for tr, te in splits:
        assert rows[tr].max() < rows[te].min()
    np.testing.assert_array_equal(rows[splits[0][0]], [10, 20, 30])
    np.testing.assert_array_equal(rows[np.concatenate([te for _, te in splits])], [40, 50, 60, 70, 80, 90])
    # the outer splitter's gap is kept between each training part and its held-out part
    splits, _ = forward_folds(2, np.arange(30), gap=4)
    for tr, te in splits:
        assert te.min() - tr.max() > 4
    # too few rows for any forward split: no inner cross-validation, and why
    splits, reason = forward_folds(3, np.arange(3), gap=2)
    assert splits is None and "forward-in-time" in reason
