"""Matplotlib figures for a comparison (Agg backend; each function returns a Figure).

Figures are built with `matplotlib.figure.Figure` directly, never through pyplot, so
nothing opens a window or keeps global state, and any backend the user set is untouched.
"""

import math

import numpy as np
from matplotlib.figure import Figure


def _grid(count, size=3.2, max_cols=4, min_width=0.0):
    cols = min(count, max_cols)
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(max(size * cols + 0.6, min_width), size * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def roc_curves(y, predictions):
    """Micro-averaged one-vs-rest ROC curve of every model (one line each)."""
    from sklearn.metrics import auc, roc_curve

    fig = Figure(figsize=(5.5, 4.5), layout="constrained")
    ax = fig.subplots()
    for name, p in predictions.items():
        k = p.values.shape[1]
        if k == 2:
            fpr, tpr, _ = roc_curve(y, p.values[:, 1])
        else:
            fpr, tpr, _ = roc_curve(np.eye(k)[y].ravel(), p.values.ravel())
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01))
    ax.set_title("ROC curves" + (" (micro-averaged one-vs-rest)" if k > 2 else ""))
    ax.legend(loc="lower right", fontsize="small")
    return fig


def confusion_matrices(y, predictions):
    """Row-normalised confusion matrix of every model."""
    from sklearn.metrics import confusion_matrix

    fig, axes = _grid(len(predictions))
    for ax, (name, p) in zip(axes, predictions.items(), strict=False):
        k = p.values.shape[1]
        cm = confusion_matrix(y, p.labels, labels=np.arange(k), normalize="true")
        ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
        if k <= 12:
            for i in range(k):
                for j in range(k):
                    if cm[i, j] >= 0.005:
                        color = "white" if cm[i, j] > 0.5 else "black"
                        ax.text(j, i, f"{cm[i, j]:.2f}"[1:] if cm[i, j] < 1 else "1", ha="center",
                                va="center", fontsize=6, color=color)
        ax.set(title=name, xlabel="predicted", ylabel="true")
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        ax.tick_params(labelsize=6)
    fig.suptitle("Confusion matrices (rows: true class, normalised)")
    return fig


def reliability_diagrams(y, predictions, bins=10):
    """Top-label confidence against accuracy per confidence bin, every model."""
    from kfuse.evaluation.metrics import expected_calibration_error, reliability_bins

    fig = Figure(figsize=(5.5, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect calibration")
    for name, p in predictions.items():
        table = reliability_bins(y, p.values, bins=bins)
        ece = expected_calibration_error(y, p.values)
        ax.plot(table[:, 0], table[:, 1], marker="o", markersize=3, label=f"{name} (ECE {ece:.3f})")
    ax.set(xlabel="confidence (top class)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.01))
    ax.set_title("Reliability diagram")
    ax.legend(loc="upper left", fontsize="small")
    return fig


def diversity_heatmap(diversity):
    """Pairwise disagreement and Yule's Q (classification) or error correlation (regression)."""
    measures = [m for m in ("disagreement", "q_statistic", "error_correlation") if m in diversity.pairs]
    if "disagreement" in measures:
        measures = ["disagreement", "q_statistic"]
    fig, axes = _grid(len(measures), size=3.8, max_cols=2)
    members = diversity.members
    for ax, measure in zip(axes, measures, strict=False):
        m = diversity.matrix(measure).to_numpy(dtype=float)
        vmin, vmax = (0, max(0.01, np.nanmax(m))) if measure == "disagreement" else (-1, 1)
        image = ax.imshow(m, cmap="viridis" if measure == "disagreement" else "coolwarm", vmin=vmin, vmax=vmax)
        for i in range(len(members)):
            for j in range(len(members)):
                if not np.isnan(m[i, j]):
                    rgba = image.cmap(image.norm(m[i, j]))
                    dark = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] < 0.5
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")
        ax.set_xticks(range(len(members)), members, rotation=45, ha="right")
        ax.set_yticks(range(len(members)), members)
        ax.set_title(measure.replace("_", " "))
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle("Diversity between members")
    return fig


def contribution_bars(contributions):
    """Per-branch ablation drop (and learned fusion weight, when there is one)."""
    table = contributions.table()
    metric = contributions.metric
    panels = [c for c in ("fusion weight", "mean gate") if c in table] + [f"{metric} drop"]
    fig, axes = _grid(len(panels), size=3.8, max_cols=2, min_width=6.4)  # room for the title
    for ax, column in zip(axes, panels, strict=False):
        values = table[column].to_numpy(dtype=float)
        colors = ["tab:blue" if v >= 0 else "tab:red" for v in values]
        ax.bar(list(table.index), values, color=colors)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(column if column != f"{metric} drop" else cost_title(metric))
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle(f"Branch contributions: {contributions.model_name}\n(ablation by {contributions.method})")
    return fig


def cost_title(metric):
    """What the ablation bar shows, in the metric's own direction (MAE rises, accuracy drops)."""
    from kfuse.evaluation.metrics import LOWER_IS_BETTER

    change = "rise" if metric in LOWER_IS_BETTER else "drop"
    return f"{metric} {change} without the branch (> 0: the branch helps)"


def _values(y, p):
    v = p.values
    return v[:, 0] if (y.ndim == 1 and v.ndim == 2) else v


def predicted_vs_true(y, predictions):
    """Scatter of predicted against true values, one panel per model (regression)."""
    fig, axes = _grid(len(predictions))
    low, high = float(np.min(y)), float(np.max(y))
    for ax, (name, p) in zip(axes, predictions.items(), strict=False):
        ax.scatter(np.ravel(y), np.ravel(_values(y, p)), s=6, alpha=0.5)
        ax.plot([low, high], [low, high], color="grey", linestyle=":")
        ax.set(title=name, xlabel="true", ylabel="predicted")
    fig.suptitle("Predicted vs true")
    return fig


def residuals(y, predictions):
    """Residual (predicted - true) against prediction, one panel per model (regression)."""
    fig, axes = _grid(len(predictions))
    for ax, (name, p) in zip(axes, predictions.items(), strict=False):
        v = np.ravel(_values(y, p))
        ax.scatter(v, v - np.ravel(y), s=6, alpha=0.5)
        ax.axhline(0, color="grey", linestyle=":")
        ax.set(title=name, xlabel="predicted", ylabel="residual")
    fig.suptitle("Residuals")
    return fig
