"""Soft and hard voting over classifier branches, with equal or fixed branch weights."""

import keras
import numpy as np
from keras import ops

from kfuse.layers.base import FusionLayer, expand_presence


@keras.saving.register_keras_serializable(package="kfuse")
class Vote(FusionLayer):
    """Majority (hard) or probability-averaging (soft) voting over class scores.

    Every branch outputs `(batch, classes)`. Soft voting averages class probabilities;
    hard voting gives each branch one vote for its arg-max class and returns the vote
    share per class (ties keep the lowest class index under `argmax`). The output is a
    probability-like `(batch, classes)` tensor, so stack voting with `head=None`. With
    `weights`, branch m's vote counts `w_m / sum(w)` (AdaBoost SAMME's weighted hard vote
    is `Vote("hard", weights=alphas)`, saved as `WeightedVote`).

    Args:
        mode (str): "soft" or "hard".
        inputs_are (str): "probabilities" (default) or "logits": what the branches emit.
            With "logits", soft voting applies a softmax to each branch first.
        weights (list[float] | None): fixed (not trained) branch weights, non-negative
            with a positive sum; None counts every branch once.

    Keyword Args:
        branch_names (list[str] | None): optional branch names (set by `kfuse.stack`).

    Example:

    ```python
    import numpy as np
    import kfuse

    a = np.array([[0.9, 0.1]]); b = np.array([[0.4, 0.6]]); c = np.array([[0.45, 0.55]])
    kfuse.layers.Vote("hard")([a, b, c])  # [[1/3, 2/3]]
    kfuse.layers.Vote("soft")([a, b, c])  # [[0.583, 0.417]]
    kfuse.layers.Vote("hard", weights=[3.0, 1.0])([a, b])  # [[0.75, 0.25]]
    ```
    """

    min_branches = 1
    requires_equal_shapes = True
    supports_presence = True

    def __init__(self, mode="soft", inputs_are="probabilities", weights=None, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("soft", "hard"):
            raise ValueError(f"{type(self).__name__}: `mode` must be 'soft' or 'hard'; received {mode!r}")
        if inputs_are not in ("probabilities", "logits"):
            raise ValueError(
                f"{type(self).__name__}: `inputs_are` must be 'probabilities' or 'logits'; received {inputs_are!r}"
            )
        if weights is not None:
            weights = [float(w) for w in weights]
            if not weights or any(not w >= 0 for w in weights) or not sum(weights) > 0:
                raise ValueError(
                    f"{type(self).__name__}: `weights` must be non-negative with a positive sum; received {weights}"
                )
        self.mode = mode
        self.inputs_are = inputs_are
        self.weights_init = weights

    def build(self, input_shape):
        shapes = self._check_shapes(input_shape)
        self._check_weight_count(self.weights_init, len(shapes))
        self.built = True

    def _vote(self, x):
        """One branch's vote: its arg-max class one-hot (hard), or its probabilities."""
        if self.mode == "hard":
            return ops.one_hot(ops.argmax(x, axis=-1), x.shape[-1], dtype=x.dtype)
        return ops.softmax(x, axis=-1) if self.inputs_are == "logits" else x

    def fuse(self, inputs, presence):
        votes = [self._vote(x) for x in inputs]
        if self.weights_init is not None and presence is None:  # sum_m w_m vote_m / sum_m w_m
            total, out = sum(self.weights_init), None
            for w, vote in zip(self.weights_init, votes, strict=True):
                vote = vote * (w / total)
                out = vote if out is None else out + vote
            return out
        total = None
        norm = None
        for i, x in enumerate(votes):
            w = ops.ones_like(x[..., 0]) if presence is None else presence[:, i]
            if self.weights_init is not None:
                w = w * self.weights_init[i]
            w = expand_presence(w, x)
            total = w * x if total is None else total + w * x
            norm = w if norm is None else norm + w
        return total / ops.maximum(norm, 1e-7)

    def branch_weights(self):
        """The normalised branch weights as a dict of branch name to float."""
        weights = self.weights_init or [1.0] * len(self.branch_names or [])
        return self._by_branch(np.asarray(weights) / sum(weights)) if weights else {}

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "inputs_are": self.inputs_are, "weights": self.weights_init})
        return config


@keras.saving.register_keras_serializable(package="kfuse_ensemble")
class WeightedVote(Vote):
    """`Vote("hard", weights=...)`: sum_m w_m onehot(argmax x_m) / sum_m w_m.

    With SAMME's `alpha_m` as weights, the arg-max of the output is scikit-learn's
    `AdaBoostClassifier(algorithm="SAMME")` prediction. The output is the weighted vote
    share per class, `(batch, classes)`, summing to one. Kept under its registered name
    (`kfuse_ensemble>WeightedVote`) so that graphs saved before still load.

    Args:
        weights (list[float]): list of M non-negative numbers with a positive sum (fixed, not
            trained).
        mode (str): "hard" (the only mode of this name).

    Keyword Args:
        branch_names (list[str] | None): optional branch names (set by `kfuse.stack`).

    Example:

    ```python
    import numpy as np
    from kfuse.layers.vote import WeightedVote

    a = np.array([[0.9, 0.1]]); b = np.array([[0.4, 0.6]])
    WeightedVote([3.0, 1.0])([a, b])  # [[0.75, 0.25]]
    ```
    """

    def __init__(self, weights, mode="hard", **kwargs):
        if mode != "hard":
            raise ValueError(f"WeightedVote is the hard vote; received mode={mode!r}. Use kfuse.layers.Vote")
        super().__init__("hard", weights=weights, **kwargs)
