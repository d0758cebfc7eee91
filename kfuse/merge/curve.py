"""``interpolation_curve``: loss and accuracy along the straight line between two models."""

import dataclasses

import keras
import numpy as np

from .batchnorm import repair_batchnorm
from .checks import check_same, weight_specs
from .soups import accuracy


@dataclasses.dataclass
class InterpolationCurve:
    """``alphas`` (0 = model_a), test ``loss`` and ``accuracy`` at each; ``barrier``: the
    largest rise of the loss above the straight line between the end points;
    ``accuracy_barrier``: the largest drop of accuracy below it."""

    alphas: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray

    @property
    def barrier(self):
        line = (1 - self.alphas) * self.loss[0] + self.alphas * self.loss[-1]
        return float(np.max(self.loss - line))

    @property
    def accuracy_barrier(self):
        line = (1 - self.alphas) * self.accuracy[0] + self.alphas * self.accuracy[-1]
        return float(np.max(line - self.accuracy))

    @property
    def midpoint_accuracy(self):
        return float(np.interp(0.5, self.alphas, self.accuracy))

    def plot(self, ax=None, label=None):
        """Accuracy (solid) and loss (dashed, right axis) against alpha; returns the axes.

        Example:

        ```python
        import matplotlib
        matplotlib.use("Agg")
        import numpy as np
        from kfuse.merge.curve import InterpolationCurve
        c = InterpolationCurve(np.linspace(0, 1, 3), np.array([1.0, 2.0, 1.0]),
                               np.array([0.9, 0.5, 0.9]))
        ax = c.plot(label="naive")
        ```
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        line = ax.plot(self.alphas, self.accuracy, marker="o", label=label)[0]
        ax.set_xlabel("alpha (0 = model_a, 1 = model_b)")
        ax.set_ylabel("accuracy")
        twin = getattr(ax, "_kfuse_loss_axis", None)
        if twin is None:
            twin = ax.twinx()
            twin.set_ylabel("loss (dashed)")
            ax._kfuse_loss_axis = twin
        twin.plot(self.alphas, self.loss, linestyle="--", color=line.get_color())
        if label is not None:
            ax.legend(loc="lower center")
        return ax


def _loss(y, p):
    p = np.asarray(p, dtype="float64")
    y = np.asarray(y).reshape(-1).astype(int)
    if not (p.min() >= 0 and np.allclose(p.sum(1), 1, atol=1e-3)):
        p = np.exp(p - p.max(1, keepdims=True))
        p = p / p.sum(1, keepdims=True)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))


def interpolation_curve(model_a, model_b, data, steps=11, repair_data=None, batch_size=256):
    """Cross-entropy and accuracy of ``(1 - alpha) * a + alpha * b`` for ``steps`` alphas.

    ``data``: ``(x, y)`` with integer labels. Without ``repair_data`` every weight is
    interpolated (BatchNorm statistics too: the plain baseline); with it the BatchNorm
    statistics of each point are recomputed (``repair_batchnorm``).

    Example:

    ```python
    import keras, numpy as np
    from kfuse.merge import interpolation_curve
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    def net():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    curve = interpolation_curve(net(), net(), (x, y), steps=3)
    print(curve.accuracy, curve.barrier)
    ```
    """
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError("interpolation_curve needs data=(x, y) with integer class labels")
    if int(steps) < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    specs = weight_specs(model_a)
    check_same(specs, weight_specs(model_b), "model_b", "model_a")
    x, y = data
    wa, wb = model_a.get_weights(), model_b.get_weights()
    point = keras.models.clone_model(model_a)
    alphas = np.linspace(0, 1, int(steps))
    losses, accs = [], []
    for alpha in alphas:
        point.set_weights([
            (1 - alpha) * a + alpha * b if s.kind != "nonfloat" else a
            for a, b, s in zip(wa, wb, specs, strict=False)
        ])
        if repair_data is not None:
            repair_batchnorm(point, repair_data, batch_size)
        p = point.predict(x, batch_size=batch_size, verbose=0)
        losses.append(_loss(y, p))
        accs.append(accuracy(y, p))
    return InterpolationCurve(alphas, np.array(losses), np.array(accs))
