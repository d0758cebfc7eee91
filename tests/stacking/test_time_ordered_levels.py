"""`Stacker(levels=2)` under a time-ordered `cv`.

The level-2 learners train out-of-fold on the level-1 out-of-fold rows. With
`cv=TimeSeriesSplit(...)` those rows are in time order, so the level-2 folds must train on
earlier rows and predict later ones (a shuffled KFold there lets future rows shape the
level-2 predictions of past ones, which then train the meta-learner). Forward splits never
hold out the earliest chunk: those rows have no level-2 prediction, stay NaN, and the
meta-learner trains (and the selection scores) only on the rows that have one. An int cv
keeps the shuffled, stratified level-2 folds over every OOF row.
"""

import numpy as np
import pytest
from sklearn.model_selection import TimeSeriesSplit

import kfuse
from kfuse.stacking import levels, selection
from kfuse.stacking.folds import resolve_cv
from tests.stacking import time_rows, two_dense_branches

N = 120


def _data():
    return time_rows(N)


_branches = two_dense_branches


class _Recorded:
    """A fold model whose `predict` notes which rows of the level-2 matrix it predicted."""

    def __init__(self, model, matrix, sink):
        self.model, self.matrix, self.sink = model, matrix, sink

    def predict(self, x, **kwargs):
        x = np.asarray(x)
        # the matrix rows it was given (passthrough=True: every row is distinct)
        hits = (x[:, None, :] == self.matrix[None, :, :]).all(-1)
        assert (hits.sum(1) == 1).all()
        self.sink.append(hits.argmax(1))
        return self.model.predict(x, **kwargs)


def _fit_recording(monkeypatch, cv, selection_mode="meta"):
    """Fit a small real levels=2 Stacker. Returns it, y, the level-2 folds of the first
    learner as (train, held-out) positions into the OOF rows, the rows `choose` got and
    the rows the top trained on."""
    folds, held_out, seen = [], [], {}
    original_fit = levels.LevelTwo._fit

    def recording_fit(self, name, widths, matrix, labels, rows, *args):
        model = original_fit(self, name, widths, matrix, labels, rows, *args)
        if rows is None or name != "l2_linear":  # the final learners go into the graph
            return model
        sink = []
        folds.append((np.asarray(rows), sink))
        return _Recorded(model, matrix, sink)

    original_choose = selection.choose

    def recording_choose(stacker, top, top_features, member_features, arrays, y, rows):
        seen["choose"] = np.asarray(rows)
        return original_choose(stacker, top, top_features, member_features, arrays, y, rows)

    original_train_top = kfuse.Stacker._train_top

    def recording_train_top(self, names, features, arrays, y, rows):
        seen["train_top"] = np.asarray(rows)
        return original_train_top(self, names, features, arrays, y, rows)

    monkeypatch.setattr(levels.LevelTwo, "_fit", recording_fit)
    monkeypatch.setattr(selection, "choose", recording_choose)
    monkeypatch.setattr(kfuse.Stacker, "_train_top", recording_train_top)
    x, y = _data()
    stacker = kfuse.Stacker(
        _branches(), head=2, cv=cv, levels=2, seed=0, verbose=0, meta_fit={"epochs": 2}, selection=selection_mode,
        passthrough=True,  # the raw inputs in the level-2 matrix: every row distinct
    )
    stacker.fit(x, y)
    for tr, sink in folds:
        assert len(sink) == 1
        held_out.append((tr, sink[0]))
    return stacker, y, held_out, seen


def test_time_series_cv_gets_forward_in_time_level_two_folds(monkeypatch):
    stacker, y, splits, seen = _fit_recording(monkeypatch, TimeSeriesSplit(3))
    rows = stacker.oof_rows_
    assert rows[0] == N // 4  # the outer TimeSeriesSplit never holds out its first chunk
    assert len(splits) == 5
    held = np.zeros(len(rows), bool)
    for tr, te in splits:
        # every level-2 training position precedes its held-out positions
        assert rows[tr].max() < rows[te].min()
        assert not held[te].any()  # each OOF row held out at most once
        held[te] = True
    assert not held[: len(rows) // 6].any() and held[-1]  # the earliest chunk never

    # the rows with a level-2 prediction: only those train the top and are scored
    level2 = stacker.level2_
    np.testing.assert_array_equal(level2.rows, rows[held])
    np.testing.assert_array_equal(seen["choose"], level2.rows)
    np.testing.assert_array_equal(seen["train_top"], level2.rows)
    oof = level2.oof["level2"]
    assert np.isfinite(oof[level2.rows]).all()
    # no level-2 prediction: NaN, never zeros (the earliest OOF chunk, and the rows the
    # outer split never held out)
    missing = np.setdiff1d(np.arange(N), level2.rows)
    assert len(missing) == N // 4 + len(rows) // 6
    assert np.isnan(oof[missing]).all()
    assert stacker.predict(_data()[0][:5]).shape == (5,)


def test_time_series_cv_selection_scores_only_level_two_rows(monkeypatch):
    stacker, _, _, seen = _fit_recording(monkeypatch, TimeSeriesSplit(3), selection_mode="auto")
    np.testing.assert_array_equal(seen["choose"], stacker.level2_.rows)
    assert len(stacker.level2_.rows) < len(stacker.oof_rows_)
    assert stacker.selection_ in ("meta", "caruana", "best") and stacker.selection_reason_ is None
    for value in stacker.selection_scores_.values():
        assert np.isfinite(value)


def test_int_cv_keeps_the_shuffled_stratified_level_two_folds(monkeypatch):
    stacker, y, splits, seen = _fit_recording(monkeypatch, 3)
    rows = stacker.oof_rows_
    np.testing.assert_array_equal(rows, np.arange(N))
    expected = resolve_cv(3, y[rows], stacker.head_, stacker.seed_ + 1).splits
    assert len(splits) == len(expected) == 3
    for (tr, te), (etr, ete) in zip(splits, expected, strict=True):
        np.testing.assert_array_equal(tr, etr)
        np.testing.assert_array_equal(np.sort(te), ete)
    assert any(tr.max() > te.min() for tr, te in splits)  # shuffled, as before
    # every OOF row has a level-2 prediction, and all of them train the top
    np.testing.assert_array_equal(stacker.level2_.rows, rows)
    np.testing.assert_array_equal(seen["choose"], rows)
    np.testing.assert_array_equal(seen["train_top"], rows)
    assert np.isfinite(stacker.level2_.oof["level2"]).all()


def test_too_few_rows_for_forward_level_two_folds_is_a_clear_error():
    # TimeSeriesSplit(2, gap=30) on 120 rows: 80 OOF rows, too few for any forward
    # level-2 split that keeps the gap
    x, y = _data()
    stacker = kfuse.Stacker(
        _branches(), head=2, cv=TimeSeriesSplit(2, gap=30), levels=2, seed=0, verbose=0, meta_fit={"epochs": 1}
    )
    with pytest.raises(ValueError, match=r"levels=2, cv=TimeSeriesSplit.*forward-in-time.*gap=30.*levels=1"):
        stacker.fit(x, y)
