"""FiLM: one named branch conditions the others, gamma(x_c) * x_b + beta(x_c)."""

import keras
from keras import ops

from kfuse.layers.masking import MultiBranchFusion, presence_column


@keras.saving.register_keras_serializable(package="kfuse")
class FiLM(MultiBranchFusion):
    """Feature-wise linear modulation of every other branch by a conditioning branch.

    For each conditioned branch b: out_b = (1 + gamma_b(x_c)) * x_b + beta_b(x_c), with
    gamma_b and beta_b one Dense layer on the conditioning branch x_c (initialised so the
    layer starts close to the identity). The outputs of the conditioned branches are
    concatenated on the last axis (one branch: its modulated output). Conditioned
    branches may be sequences `(batch, steps, d_b)`; the conditioning branch is
    `(batch, d_c)`. If the conditioning branch is absent (presence 0) the others pass
    through unchanged; an absent conditioned branch outputs zeros.

    Args:
        conditioning (str | int | None): the conditioning branch, by name (a `branch_names` entry,
            which `kfuse.stack` sets) or by index.

    Keyword Args:
        branch_names (list[str] | None): optional branch names (set by `kfuse.stack`).

    Example:

    ```python
    import numpy as np
    import kfuse

    fuse = kfuse.layers.FiLM(conditioning="meta", branch_names=["image", "meta"])
    out = fuse([np.ones((2, 6)), np.ones((2, 3))])  # (2, 6): the image modulated by meta
    ```
    """

    def __init__(self, conditioning=None, **kwargs):
        super().__init__(**kwargs)
        if conditioning is None or isinstance(conditioning, bool) or not isinstance(
            conditioning, (str, int)
        ):
            raise ValueError(
                "FiLM needs a conditioning branch: conditioning='<branch name>' or an index; "
                f"received {conditioning!r}"
            )
        self.conditioning = conditioning
        self.modulators = []

    def conditioning_index(self, count):
        """The index of the conditioning branch among `count` branches."""
        if isinstance(self.conditioning, int):
            if not -count <= self.conditioning < count:
                raise ValueError(
                    f"FiLM: conditioning={self.conditioning} but there are only {count} branches"
                )
            return self.conditioning % count
        if not self.branch_names or self.conditioning not in self.branch_names:
            raise ValueError(
                f"FiLM: conditioning branch {self.conditioning!r} is not among the branch "
                f"names {self.branch_names}; name an existing branch or pass an index"
            )
        return self.branch_names.index(self.conditioning)

    def build(self, input_shape):
        shapes = self._check_shapes(input_shape)
        c = self.conditioning_index(len(shapes))
        if len(shapes[c]) != 2:
            raise ValueError(
                f"FiLM: the conditioning {self._label(c)} must output (batch, features); "
                f"received shape {shapes[c]}"
            )
        others = [i for i in range(len(shapes)) if i != c]
        ranks = {len(shapes[i]) for i in others}
        if len(ranks) != 1:
            listing = ", ".join(f"{self._label(i)}: {shapes[i]}" for i in others)
            raise ValueError(f"FiLM: the conditioned branches must share one rank; received {listing}")
        self.modulators = []
        for i in others:
            dense = keras.layers.Dense(
                2 * shapes[i][-1],
                kernel_initializer="zeros",
                name=f"film_{i}",
                dtype=self.dtype_policy,
            )
            dense.build(shapes[c])
            self.modulators.append(dense)
        self.built = True

    def fuse(self, inputs, presence):
        c = self.conditioning_index(len(inputs))
        condition = inputs[c]
        outputs = []
        for dense, i in zip(self.modulators, [i for i in range(len(inputs)) if i != c], strict=True):
            x = inputs[i]
            gamma, beta = ops.split(dense(condition), 2, axis=-1)
            if presence is not None:
                pc = presence_column(presence, c, gamma)
                gamma, beta = gamma * pc, beta * pc
            for _ in range(len(x.shape) - 2):
                gamma, beta = ops.expand_dims(gamma, 1), ops.expand_dims(beta, 1)
            out = (1.0 + gamma) * x + beta
            if presence is not None:
                out = out * presence_column(presence, i, out)
            outputs.append(out)
        return outputs[0] if len(outputs) == 1 else ops.concatenate(outputs, axis=-1)

    def compute_output_shape(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        c = self.conditioning_index(len(shapes))
        widths = [s[-1] for i, s in enumerate(shapes) if i != c]
        width = None if any(w is None for w in widths) else sum(widths)
        first = shapes[1 if c == 0 else 0]
        return tuple(first[:-1]) + (width,)

    @staticmethod
    def cost_formula(widths, conditioning=0, branch_names=None, **_):
        """Parameters, FLOPs per sample and output width, from the branch widths."""
        widths = [int(w) for w in widths]
        c = conditioning if isinstance(conditioning, int) else 0
        if isinstance(conditioning, str) and branch_names and conditioning in branch_names:
            c = list(branch_names).index(conditioning)
        dc = widths[c]
        others = [w for i, w in enumerate(widths) if i != c]
        params = sum((dc + 1) * 2 * w for w in others)
        flops = sum(2 * dc * 2 * w + 2 * w + 3 * w for w in others)
        return {"params": params, "flops": flops, "output_width": sum(others)}

    def get_config(self):
        config = super().get_config()
        config.update({"conditioning": self.conditioning})
        return config
