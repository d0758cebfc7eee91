import warnings

import numpy as np
import pytest
from sklearn.model_selection import GroupKFold

from kfuse.layers.heads import Classification, Regression
from kfuse.stacking.folds import resolve_cv


def test_int_cv_is_stratified_and_partitions_rows():
    y = np.repeat([0, 1, 2], [10, 20, 30])
    plan = resolve_cv(5, y, Classification(3), seed=0)
    assert plan.kind == "kfold" and plan.n_splits == 5
    held = np.concatenate([test for _, test in plan.splits])
    np.testing.assert_array_equal(np.sort(held), np.arange(60))
    for train, test in plan.splits:
        assert not set(train) & set(test)
        np.testing.assert_array_equal(np.bincount(y[test]), [2, 4, 6])
    assert "StratifiedKFold" in plan.description


def test_int_cv_is_deterministic_from_the_seed():
    y = np.arange(40) % 2
    a = resolve_cv(4, y, Classification(2), seed=3).splits
    b = resolve_cv(4, y, Classification(2), seed=3).splits
    c = resolve_cv(4, y, Classification(2), seed=4).splits
    assert all(np.array_equal(p[1], q[1]) for p, q in zip(a, b, strict=True))
    assert not all(np.array_equal(p[1], q[1]) for p, q in zip(a, c, strict=True))


def test_regression_uses_plain_kfold():
    plan = resolve_cv(3, np.linspace(0, 1, 30), Regression(), seed=0)
    assert "KFold" in plan.description and "Stratified" not in plan.description
    assert sorted(len(t) for _, t in plan.splits) == [10, 10, 10]


def test_float_cv_is_a_stratified_holdout():
    y = np.arange(100) % 4
    plan = resolve_cv(0.2, y, Classification(4), seed=0)
    assert plan.kind == "holdout" and plan.n_splits == 1
    train, held = plan.splits[0]
    assert len(held) == 20 and len(train) == 80
    np.testing.assert_array_equal(np.bincount(y[held]), [5, 5, 5, 5])
    np.testing.assert_array_equal(plan.held_out_rows(100), held)


def test_sklearn_splitter_is_used_as_given():
    y = np.arange(12) % 2
    groups = np.repeat([0, 1, 2], 4)
    splitter = GroupKFold(3)
    splitter.split = lambda x, labels, g=groups, s=splitter: GroupKFold.split(s, x, labels, g)
    plan = resolve_cv(splitter, y, Classification(2))
    assert plan.n_splits == 3
    for _, test in plan.splits:
        assert len(set(groups[test])) == 1


def test_prefit_warns_loudly():
    with pytest.warns(UserWarning, match="leak"):
        plan = resolve_cv("prefit", np.arange(10) % 2, Classification(2))
    assert plan.kind == "prefit" and plan.splits == []
    np.testing.assert_array_equal(plan.held_out_rows(10), np.arange(10))


def test_cv_larger_than_the_smallest_class_is_refused():
    y = np.array([0] * 10 + [1] * 2)
    with pytest.raises(ValueError, match=r"class 1 has only 2 row\(s\).*cv<=2"):
        resolve_cv(3, y, Classification(2))


@pytest.mark.parametrize(
    "cv, error, match",
    [
        (1, ValueError, "cv >= 2"),
        (100, ValueError, "only 20 rows"),
        (1.5, ValueError, r"\(0, 1\)"),
        ("five", ValueError, "prefit"),
        (True, TypeError, "cv must be"),
        (object(), TypeError, "splitter"),
    ],
)
def test_bad_cv_values(cv, error, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=match):
            resolve_cv(cv, np.arange(20) % 2, Regression())
