"""`compare()` and the `Report` it returns."""

import os

from kfuse.evaluation import html as render
from kfuse.evaluation import plots
from kfuse.evaluation.contributions import contributions as branch_contributions
from kfuse.evaluation.diversity import diversity as member_diversity
from kfuse.evaluation.metrics import LOWER_IS_BETTER, per_class_scores, resolve_metrics, score_table
from kfuse.evaluation.predictions import collect
from kfuse.evaluation.running import fused_model
from kfuse.evaluation.self_check import branch_drift, drift_notes
from kfuse.evaluation.significance import significance as significance_table
from kfuse.utils.quiet import quiet_tensorflow

#: the figures of each task over y and the predictions: name -> (what an error calls them,
#: the `plots` function drawing them, their caption in `figures()`)
TASK_FIGURES = {
    "classification": {
        "roc": ("ROC curves", plots.roc_curves, "ROC curves of every model"),
        "confusion": ("Confusion matrices", plots.confusion_matrices, "Confusion matrices"),
        "reliability": ("Reliability diagrams", plots.reliability_diagrams, "Reliability diagrams (calibration)"),
    },
    "regression": {
        "predicted_vs_true": ("Predicted-vs-true plots", plots.predicted_vs_true, "Predicted vs true values"),
        "residuals": ("Residual plots", plots.residuals, "Residuals"),
    },
}


def compare(
    models,
    x=None,
    y=None,
    task="auto",
    reference=None,
    metrics=None,
    batch_size=256,
    n_boot=1000,
    seed=0,
    alpha=0.05,
    contributions=True,
    allow_nonfinite=False,
):
    """Compare models on one data set: scores, diversity, significance, contributions.

    Args:
        models (dict): dict of name -> Keras model, kfuse `Stacker` (anything with `predict` /
            `predict_proba`) or a prediction array (probabilities, logits, one logit or
            sigmoid per row, hard labels; or values for regression).
        x (ArrayLike | dict | tf.data.Dataset | None): inputs (array, dict of arrays, or a
            `tf.data.Dataset` of (inputs, labels)); may be None when every model is a prediction
            array.
        y (ArrayLike | None): labels (class ids or one-hot) or regression targets.
        task (str): "auto", "classification" or "regression".
        reference (str | None): the model tested against the others (default: the kfuse model, or
            the last entry when there is none). The others are the members.
        metrics (list[str] | None): metric names to compute (default: all for the task).
        n_boot (int): bootstrap resamples.
        seed (int): the bootstrap's seed.
        alpha (float): the significance tests' level.
        contributions (bool): compute branch weights and ablation for kfuse models.
        allow_nonfinite (bool): skip the NaN / inf check of numeric inputs (`kfuse.inputs`).

    Returns:
        Report: a `Report`.

    Example:

    ```python
    import numpy as np, kfuse

    y = np.array([0, 1, 1, 0, 1, 0])
    a = np.array([[.9, .1], [.2, .8], [.6, .4], [.7, .3], [.3, .7], [.8, .2]])
    b = np.array([[.6, .4], [.4, .6], [.3, .7], [.4, .6], [.2, .8], [.9, .1]])
    report = kfuse.compare({"a": a, "b": b, "mean": (a + b) / 2}, y=y)
    print(report.to_markdown())
    ```
    """
    with quiet_tensorflow():
        return _compare(
            models, x, y, task, reference, metrics, batch_size, n_boot, seed, alpha, contributions, allow_nonfinite
        )


def _compare(models, x, y, task, reference, metrics, batch_size, n_boot, seed, alpha, contributions, allow_nonfinite):
    task, labels, predictions = collect(models, x, y, task, batch_size, allow_nonfinite)
    names = resolve_metrics(task, metrics)
    reference = _reference(models, reference)
    members = [n for n in models if n != reference]
    table, notes = score_table(task, labels, predictions, names)
    notes = sorted(notes) + [note for p in predictions.values() for note in p.notes]
    drift = branch_drift(models, x, batch_size=batch_size)
    notes += drift_notes(drift, models)
    diversity = member_diversity(task, labels, predictions, members)
    significance = (
        significance_table(task, labels, predictions, reference, members, n_boot=n_boot, seed=seed, alpha=alpha)
        if members
        else None
    )
    found = {}
    if contributions:
        for name, model in models.items():
            c = branch_contributions(name, model, x, labels, task, batch_size=batch_size)
            if c is not None:
                found[name] = c
    report = Report(task, labels, predictions, table, diversity, significance, found, reference, members, notes, alpha)
    report.branch_drift = drift
    return report


def _reference(models, reference):
    if reference is not None:
        if reference not in models:
            raise ValueError(f"compare(): reference {reference!r} is not one of the models {list(models)}")
        return reference
    kfuse_models = [n for n, m in models.items() if fused_model(m) is not None]
    return kfuse_models[-1] if kfuse_models else list(models)[-1]


def _change(metric, cost):
    """A cost (> 0: worse) as the metric moves: 'mae rose by 0.19', 'accuracy dropped by 0.02'."""
    lower = metric in LOWER_IS_BETTER
    if cost == 0:
        return f"{metric} unchanged"
    worse = cost > 0
    verb = ("rose" if worse else "fell") if lower else ("dropped" if worse else "rose")
    return f"{metric} {verb} by {abs(cost):.4f}"


class Report:
    """The result of `kfuse.compare`: tables, figures, markdown and one HTML file.

    Attributes:
        task: "classification" or "regression".
        table: pandas DataFrame, one row per model, one column per metric.
        reference, members: the model tested against the others, and the others.
        diversity: a `kfuse.evaluation.diversity.Diversity` (`.pairs`, `.oracle_accuracy`,
            `.applicable`, `.reason`).
        significance: pandas DataFrame (reference vs each member) or None.
        contributions: dict model name -> `Contributions` for kfuse models.
        notes: what was converted or could not be computed, in words.
        branch_drift: {fused model: {branch: largest |branch - base|}} for each branch whose
            base was also given under the branch's name (`kfuse.evaluation.self_check`);
            a gap beyond float noise adds a note.
        predictions: dict name -> `Prediction` (probabilities or values).

    Example:

    ```python
    import numpy as np, kfuse

    y = np.array([0, 1, 2, 1])
    logits = np.array([[3., 0, 0], [0, 2., 0], [0, 0, 1.], [1., 0, 0]])
    report = kfuse.compare({"net": logits}, y=y)
    report.table.loc["net", "accuracy"]   # 0.75
    report.diversity.reason              # 'not applicable: ...'
    fig = report.plot_confusion()
    report.to_html("report.html")
    ```
    """

    def __init__(self, task, y, predictions, table, diversity, significance, contributions,
                 reference, members, notes, alpha=0.05):
        self.task = task
        self.y = y
        self.predictions = predictions
        self.table = table
        self.diversity = diversity
        self.significance = significance
        self.contributions = contributions
        self.reference = reference
        self.members = members
        self.notes = notes
        self.alpha = alpha

    # -- words ----------------------------------------------------------------------------
    @property
    def primary_metric(self):
        preferred = "accuracy" if self.task == "classification" else "mae"
        return preferred if preferred in self.table else self.table.columns[0]

    def headline(self):
        """Sentences answering: is the reference better, is it significant, what do branches bring."""
        metric = self.primary_metric
        lower = metric in LOWER_IS_BETTER
        scores = self.table[metric]
        lines = []
        ref_score = scores[self.reference]
        if self.members:
            best = scores[self.members].idxmin() if lower else scores[self.members].idxmax()
            gain = (scores[best] - ref_score) if lower else (ref_score - scores[best])
            verdict = "better than" if gain > 0 else ("as good as" if gain == 0 else "worse than")
            lines.append(
                f"'{self.reference}' scores {metric} {ref_score:.4f}: {verdict} the best member "
                f"'{best}' ({scores[best]:.4f}, difference {gain:+.4f})."
            )
            if self.significance is not None and best in self.significance.index:
                row = self.significance.loc[best]
                low, high = row["ci95 low"], row["ci95 high"]
                word = "significant" if row["significant"] else "not significant"
                lines.append(
                    f"Against '{best}': {row['test']} p = {row['p_value']:.3g} ({word} at "
                    f"{self.alpha}); bootstrap 95% CI of the difference [{low:+.4f}, {high:+.4f}]."
                )
        else:
            lines.append(f"'{self.reference}' scores {metric} {ref_score:.4f} (no other model to compare).")
        for name, c in self.contributions.items():
            col = c.ablation[f"{c.metric} drop"]  # > 0: worse without the branch
            lines.append(
                f"'{name}': removing branch '{col.idxmax()}' costs the most "
                f"({_change(c.metric, col.max())}); removing '{col.idxmin()}' the least "
                f"({_change(c.metric, col.min())})."
            )
        return lines

    def per_class(self):
        """Precision, recall, F1 and support of each class, per model (classification).

        A DataFrame indexed by (model, class). Example: `report.per_class().loc["fused"]`.
        """
        self._need("classification", "Per-class metrics")
        import pandas as pd

        k = next(iter(self.predictions.values())).values.shape[1]
        frames = {name: per_class_scores(self.y, p.labels, k) for name, p in self.predictions.items()}
        return pd.concat(frames, names=["model", "class"])

    def __repr__(self):
        return f"Report(task={self.task!r}, models={list(self.predictions)}, reference={self.reference!r})"

    # -- figures ----------------------------------------------------------------------------
    def _need(self, task, what):
        if self.task != task:
            raise ValueError(f"{what} need a {task} task; this report is {self.task}")

    def _task_figure(self, task, name):
        """Figure `name` of `TASK_FIGURES[task]`, drawn over y and the predictions; a report
        of the other task is refused."""
        what, draw, _ = TASK_FIGURES[task][name]
        self._need(task, what)
        return draw(self.y, self.predictions)

    def plot_roc(self):
        return self._task_figure("classification", "roc")

    def plot_confusion(self):
        return self._task_figure("classification", "confusion")

    def plot_reliability(self):
        return self._task_figure("classification", "reliability")

    def plot_diversity(self):
        if not self.diversity.applicable:
            raise ValueError(f"Diversity heat map: {self.diversity.reason}")
        return plots.diversity_heatmap(self.diversity)

    def plot_contributions(self, name=None):
        if not self.contributions:
            raise ValueError("Branch contributions need a kfuse model (FusedModel or Stacker) in the comparison")
        name = name or next(iter(self.contributions))
        if name not in self.contributions:
            raise ValueError(f"No contributions for {name!r}; available: {list(self.contributions)}")
        return plots.contribution_bars(self.contributions[name])

    def plot_predicted_vs_true(self):
        return self._task_figure("regression", "predicted_vs_true")

    def plot_residuals(self):
        return self._task_figure("regression", "residuals")

    def figures(self):
        """Dict name -> (Figure, caption) of every figure that applies to this report."""
        task = "classification" if self.task == "classification" else "regression"
        out = {name: (self._task_figure(task, name), caption)
               for name, (_, _, caption) in TASK_FIGURES[task].items()}
        if self.diversity.applicable:
            out["diversity"] = (self.plot_diversity(), "Pairwise diversity between members")
        for name in self.contributions:
            out[f"contributions_{name}"] = (self.plot_contributions(name), f"Branch contributions of '{name}'")
        return out

    # -- text outputs ---------------------------------------------------------------------
    def _diversity_text(self):
        if not self.diversity.applicable:
            return None
        return self.diversity.summary()

    def to_markdown(self):
        """The report as Markdown text (tables only)."""
        parts = [f"# kfuse comparison ({self.task})", "", *[f"- {line}" for line in self.headline()], ""]
        parts += ["## Scores", "", render.markdown_table(self.table), ""]
        parts += ["## Diversity between members", ""]
        if self.diversity.applicable:
            parts += [render.markdown_table(self.diversity.pairs), ""]
            parts += [f"- {k}: {render.format_value(v)}" for k, v in self.diversity.summary().items()] + [""]
        else:
            parts += [f"Diversity: {self.diversity.reason}.", ""]
        parts += [f"## Significance ('{self.reference}' vs each member)", ""]
        if self.significance is not None:
            parts += [render.markdown_table(self.significance), ""]
        else:
            parts += ["Significance: not applicable: no other model to test against.", ""]
        for name, c in self.contributions.items():
            parts += [f"## Branch contributions: {name}", "",
                      f"Full {c.metric}: {c.full_score:.4f}; ablation by {c.method}.", "",
                      render.markdown_table(c.table()), ""]
        if self.notes:
            parts += ["## Notes", "", *[f"- {n}" for n in self.notes], ""]
        return "\n".join(parts)

    def to_html(self, path, title=None):
        """Write ONE self-contained HTML file (figures embedded as base64 PNG); returns path."""
        title = title or f"kfuse comparison: {', '.join(self.predictions)}"
        best = {c: ("min" if c in LOWER_IS_BETTER else "max") for c in self.table.columns}
        sections = [("Summary", render.bullet_list(self.headline())),
                    ("Scores", render.html_table(self.table, best=best))]
        if self.diversity.applicable:
            summary = self.diversity.summary()
            text = "; ".join(f"{k} {render.format_value(v)}" for k, v in summary.items())
            sections.append(("Diversity between members",
                             render.html_table(self.diversity.pairs) + render.paragraph(text)))
        else:
            sections.append(("Diversity between members", render.paragraph(f"Diversity: {self.diversity.reason}.", "na")))
        if self.significance is not None:
            sections.append((f"Significance: '{self.reference}' vs each member",
                             render.html_table(self.significance)))
        else:
            sections.append(("Significance", render.paragraph("Not applicable: no other model to test against.", "na")))
        for name, c in self.contributions.items():
            sections.append((f"Branch contributions: {name}",
                             render.paragraph(f"Full {c.metric} {c.full_score:.4f}; ablation by {c.method}.")
                             + render.html_table(c.table())))
        figures = "".join(render.figure_html(key, fig, caption) for key, (fig, caption) in self.figures().items())
        sections.append(("Figures", figures))
        if self.notes:
            sections.append(("Notes", render.bullet_list(self.notes)))
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(render.page(title, sections))
        return path


def write_demo_report(models, x_test, y_test, path, **kwargs):
    """`compare(models, x_test, y_test, **kwargs).to_html(path)`; returns the Report."""
    report = compare(models, x_test, y_test, **kwargs)
    report.to_html(path)
    return report
