"""Diversity measures and significance tests on hand-checked cases."""

import numpy as np
import pytest
from scipy import stats

import kfuse
from kfuse.evaluation.diversity import pair_counts, pair_measures
from kfuse.evaluation.significance import bootstrap_difference, mcnemar


def test_pair_measures_hand_computed():
    a = np.array([1, 1, 1, 0, 0, 1, 0, 1, 1, 0], bool)
    b = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1], bool)
    assert pair_counts(a, b) == (4, 2, 2, 2)  # N11, N10, N01, N00
    m = pair_measures(a, b)
    assert m["disagreement"] == pytest.approx(0.4)
    assert m["q_statistic"] == pytest.approx((4 * 2 - 2 * 2) / (4 * 2 + 2 * 2))
    assert m["double_fault"] == pytest.approx(0.2)
    assert m["error_correlation"] == pytest.approx(np.corrcoef(~a, ~b)[0, 1])


def test_diversity_and_oracle_from_compare():
    y = np.array([0, 1, 2, 0, 1, 2])
    eye = np.eye(3)
    a = eye[[0, 1, 2, 1, 2, 0]]  # right on rows 0-2
    b = eye[[0, 0, 0, 0, 1, 2]]  # right on rows 0, 3, 4, 5
    c = eye[[1, 1, 2, 0, 1, 0]]  # right on rows 1-4
    report = kfuse.compare({"a": a, "b": b, "c": c}, y=y, reference="c")
    assert report.members == ["a", "b"]
    assert report.diversity.applicable
    assert report.diversity.oracle_accuracy == pytest.approx(1.0)
    pair = report.diversity.pairs.loc[("a", "b")]
    assert pair["disagreement"] == pytest.approx(5 / 6)
    assert pair["double_fault"] == pytest.approx(0.0)
    matrix = report.diversity.matrix("disagreement")
    assert matrix.loc["b", "a"] == pytest.approx(5 / 6) and matrix.loc["a", "a"] == 0.0


def test_single_model_diversity_not_applicable():
    report = kfuse.compare({"only": np.eye(2)[[0, 1, 1]]}, y=np.array([0, 1, 0]))
    assert not report.diversity.applicable
    assert "not applicable" in report.diversity.reason
    assert report.significance is None
    with pytest.raises(ValueError, match="not applicable"):
        report.plot_diversity()
    assert "not applicable" in report.to_markdown()


def test_two_models_one_member():
    y = np.array([0, 1, 1, 0])
    report = kfuse.compare({"a": np.eye(2)[[0, 1, 0, 0]], "b": np.eye(2)[y]}, y=y)
    assert report.reference == "b" and report.members == ["a"]
    assert not report.diversity.applicable  # one member
    assert report.significance.loc["a", "only reference right"] == 1


def test_mcnemar_exact_and_chi_square():
    ref = np.array([1] * 10 + [0] * 2 + [1] * 20, bool)
    other = np.array([0] * 10 + [1] * 2 + [1] * 20, bool)
    b, c, _, p, method = mcnemar(ref, other)
    assert (b, c, method) == (10, 2, "exact binomial")
    assert p == pytest.approx(stats.binomtest(10, 12, 0.5).pvalue)
    ref = np.array([1] * 40 + [0] * 10, bool)
    other = np.array([0] * 40 + [1] * 10, bool)
    b, c, statistic, p, method = mcnemar(ref, other)
    assert method.startswith("chi-square")
    assert statistic == pytest.approx((30 - 1) ** 2 / 50)
    assert p == pytest.approx(stats.chi2.sf(statistic, 1))
    assert mcnemar(ref, ref)[3] == 1.0


def test_bootstrap_is_seeded_and_brackets_the_mean(rng):
    gain = rng.normal(0.1, 1.0, 500)
    first = bootstrap_difference(gain, n_boot=300, seed=3)
    assert first == bootstrap_difference(gain, n_boot=300, seed=3)
    mean, low, high = first
    assert low < mean < high
    assert mean == pytest.approx(gain.mean())
    assert high - low == pytest.approx(2 * 1.96 * gain.std() / np.sqrt(500), rel=0.25)


def test_significant_gain_detected(rng):
    y = rng.integers(0, 4, 400)
    eye = np.eye(4)
    good = eye[np.where(rng.random(400) < 0.9, y, (y + 1) % 4)]
    weak = eye[np.where(rng.random(400) < 0.6, y, (y + 1) % 4)]
    report = kfuse.compare({"weak": weak, "good": good}, y=y, seed=1)
    row = report.significance.loc["weak"]
    assert report.reference == "good"
    assert row["significant"] and row["p_value"] < 1e-6
    assert 0 < row["ci95 low"] < row["accuracy difference"] < row["ci95 high"]
    assert "significant" in " ".join(report.headline())


def test_regression_significance_and_error_correlation(rng):
    y = rng.normal(size=300)
    a = y + rng.normal(size=300) * 0.2
    b = y + rng.normal(size=300) * 1.0
    report = kfuse.compare({"a": a, "b": b, "c": (a + y) / 2}, y=y)
    assert report.task == "regression"
    assert "error_correlation" in report.diversity.pairs
    assert report.diversity.oracle_accuracy is None
    row = report.significance.loc["b"]
    assert row["test"] == "Wilcoxon signed-rank" and row["significant"]
    assert row["MAE difference"] > 0
