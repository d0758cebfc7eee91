"""Is the reference (fused) model's gain over each member real?

- Classification: McNemar's test on the rows where exactly one of the two models is
  right (b = only the reference right, c = only the member right). With b + c < 25 the
  exact two-sided binomial test is used, otherwise the chi-square statistic with
  continuity correction, (|b - c| - 1)^2 / (b + c), on one degree of freedom.
- Regression: the Wilcoxon signed-rank test on the paired absolute errors.
- Both: a seeded paired bootstrap 95% confidence interval of the score difference
  (accuracy of the reference minus the member's; for regression the member's MAE minus
  the reference's, so positive always means "the reference is better").
"""

import numpy as np
from scipy import stats

EXACT_BELOW = 25


def mcnemar(right_ref, right_member):
    """(b, c, statistic, p-value, method) of McNemar's test."""
    a, m = np.asarray(right_ref, bool), np.asarray(right_member, bool)
    b, c = int(np.sum(a & ~m)), int(np.sum(~a & m))
    if b + c == 0:
        return b, c, 0.0, 1.0, "none differ"
    if b + c < EXACT_BELOW:
        p = stats.binomtest(b, b + c, 0.5).pvalue
        return b, c, float(min(b, c)), float(p), "exact binomial"
    statistic = (abs(b - c) - 1) ** 2 / (b + c)
    return b, c, float(statistic), float(stats.chi2.sf(statistic, 1)), "chi-square (corrected)"


def bootstrap_difference(gain_per_row, n_boot=1000, seed=0, level=0.95):
    """(mean, low, high): bootstrap CI of the mean of a per-row paired difference."""
    rng = np.random.default_rng(seed)
    gain = np.asarray(gain_per_row, float)
    n = len(gain)
    means = np.empty(n_boot)
    for i in range(n_boot):
        means[i] = gain[rng.integers(0, n, n)].mean()
    tail = (1.0 - level) / 2.0
    return float(gain.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def significance(task, y, predictions, reference, members, n_boot=1000, seed=0, alpha=0.05):
    """pandas DataFrame, one row per member, comparing `reference` against it."""
    import pandas as pd

    from kfuse.evaluation.metrics import errors

    ref = predictions[reference]
    rows = {}
    for name in members:
        other = predictions[name]
        if task == "classification":
            right_ref, right_other = ref.labels == y, other.labels == y
            b, c, statistic, p, method = mcnemar(right_ref, right_other)
            gain = right_ref.astype(float) - right_other.astype(float)
            row = {"only reference right": b, "only member right": c, "test": f"McNemar, {method}"}
            label = "accuracy difference"
        else:
            err_ref, err_other = errors(task, y, ref), errors(task, y, other)
            gain = err_other - err_ref
            if np.allclose(gain, 0):
                statistic, p = 0.0, 1.0
            else:
                result = stats.wilcoxon(err_ref, err_other)
                statistic, p = float(result.statistic), float(result.pvalue)
            row = {"test": "Wilcoxon signed-rank"}
            label = "MAE difference"
        mean, low, high = bootstrap_difference(gain, n_boot=n_boot, seed=seed)
        row.update(
            {
                "statistic": statistic,
                "p_value": p,
                label: mean,
                "ci95 low": low,
                "ci95 high": high,
                "significant": bool(p < alpha),
            }
        )
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = f"{reference} vs"
    return table
