"""Diversity between ensemble members (Kuncheva & Whitaker 2003 "oracle output" measures).

For two classifiers with correctness vectors, N11 counts rows both get right, N00 rows
both get wrong, N10 / N01 rows only one gets right. Then

- disagreement = (N01 + N10) / N
- Yule's Q = (N11 N00 - N01 N10) / (N11 N00 + N01 N10)  (1: same errors, <0: opposite)
- error correlation = Pearson correlation of the two error indicators
- double fault = N00 / N  (both wrong)

and the oracle accuracy is the share of rows at least one member gets right. For
regression only the correlation of the members' residuals is defined.
"""

import itertools

import numpy as np

PAIR_MEASURES = ("disagreement", "q_statistic", "error_correlation", "double_fault")


def pair_counts(right_a, right_b):
    """(N11, N10, N01, N00) for two boolean correctness vectors."""
    a, b = np.asarray(right_a, bool), np.asarray(right_b, bool)
    return (
        int(np.sum(a & b)),
        int(np.sum(a & ~b)),
        int(np.sum(~a & b)),
        int(np.sum(~a & ~b)),
    )


def pair_measures(right_a, right_b):
    """Dict of the four pairwise measures for classification."""
    n11, n10, n01, n00 = pair_counts(right_a, right_b)
    n = n11 + n10 + n01 + n00
    q_den = n11 * n00 + n01 * n10
    return {
        "disagreement": (n01 + n10) / n,
        "q_statistic": (n11 * n00 - n01 * n10) / q_den if q_den else float("nan"),
        "error_correlation": _correlation(~np.asarray(right_a, bool), ~np.asarray(right_b, bool)),
        "double_fault": n00 / n,
    }


def _correlation(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


class Diversity:
    """Pairwise diversity between members and the oracle accuracy.

    Attributes:
        members: member names.
        pairs: pandas DataFrame, one row per pair, one column per measure (empty when
            not applicable).
        oracle_accuracy: share of rows any member classifies correctly (None if n/a).
        applicable: False with fewer than two members; `reason` says why.

    Example:

    ```python
    import numpy as np, kfuse

    y = np.array([0, 1, 1, 0])
    eye = np.eye(2)
    report = kfuse.compare({"a": eye[[0, 1, 0, 0]], "b": eye[[1, 1, 1, 0]],
                            "fused": eye[y]}, y=y)
    report.diversity.pairs                  # disagreement 0.5, double fault 0.0, ...
    report.diversity.oracle_accuracy        # 1.0: one of a, b is right on every row
    report.diversity.matrix("disagreement")
    ```
    """

    def __init__(self, members, pairs, oracle_accuracy=None, reason=None):
        self.members = list(members)
        self.pairs = pairs
        self.oracle_accuracy = oracle_accuracy
        self.reason = reason

    @property
    def applicable(self):
        return self.reason is None

    def matrix(self, measure):
        """Symmetric member x member DataFrame of one measure (diagonal: identical models)."""
        import pandas as pd

        diagonal = {"disagreement": 0.0, "q_statistic": 1.0, "error_correlation": 1.0}
        m = pd.DataFrame(np.nan, index=self.members, columns=self.members)
        for (a, b), row in self.pairs.iterrows():
            m.loc[a, b] = m.loc[b, a] = row[measure]
        for name in self.members:
            m.loc[name, name] = diagonal.get(measure, np.nan)
        return m

    def summary(self):
        """Dict of the mean of each pairwise measure plus the oracle accuracy."""
        if not self.applicable:
            return {}
        out = {f"mean {c}": float(self.pairs[c].mean()) for c in self.pairs.columns}
        if self.oracle_accuracy is not None:
            out["oracle accuracy"] = self.oracle_accuracy
        return out


def diversity(task, y, predictions, members):
    """A `Diversity` over `members` (names in `predictions`)."""
    import pandas as pd


    if len(members) < 2:
        reason = (
            f"not applicable: diversity needs at least two members, received {len(members)}"
            + (f" ({members[0]!r})" if members else "")
        )
        return Diversity(members, pd.DataFrame(), None, reason)
    rows = {}
    if task == "classification":
        right = {m: predictions[m].labels == y for m in members}
        for a, b in itertools.combinations(members, 2):
            rows[(a, b)] = pair_measures(right[a], right[b])
        oracle = float(np.mean(np.any(np.stack([right[m] for m in members]), axis=0)))
    else:
        residual = {m: _residual(y, predictions[m].values) for m in members}
        for a, b in itertools.combinations(members, 2):
            rows[(a, b)] = {"error_correlation": _correlation(residual[a], residual[b])}
        oracle = None
    pairs = pd.DataFrame.from_dict(rows, orient="index")
    pairs.index = pd.MultiIndex.from_tuples(pairs.index, names=["member a", "member b"])
    return Diversity(members, pairs, oracle)


def _residual(y, values):
    if y.ndim == 1 and values.ndim == 2:
        values = values[:, 0]
    r = values - y
    return r if r.ndim == 1 else r.ravel()
