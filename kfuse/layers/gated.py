"""The Gated Multimodal Unit (Arevalo et al. 2017), generalised to M branches."""

import keras
from keras import ops

from kfuse.layers.masking import MultiBranchFusion, masked_softmax, presence_column


def check_units(name, value, arg="units", allow_none=False):
    """Raise ValueError unless `value` is a positive int (or None when allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}: `{arg}` must be a positive int; received {value!r}")
    return value


@keras.saving.register_keras_serializable(package="kfuse")
class GatedFusion(MultiBranchFusion):
    """GMU: h_i = tanh(W_i x_i); gates from the concatenated inputs; output sum_i g_i * h_i.

    Branch widths may differ: each branch gets its own projection to `units`. The gates
    are computed from the concatenation of all (present) branch inputs and are a
    softmax over branches, either one weight per branch and sample (`gate="branch"`) or
    one per branch, sample and feature (`gate="feature"`; with two branches this is the
    original GMU's sigmoid gate z, 1 - z). An absent branch (presence 0) is zeroed in
    the gate input and gets zero gate; the gates of the present branches sum to one.

    Args:
        units (int): int > 0, width of the fused output.
        gate (str): "branch" or "feature".
        activation (str | Callable | None): activation of the branch projections (default "tanh").
        return_gates (bool): if True the layer returns `[fused, gates]`, gates `(batch, M)` or
            `(batch, M, units)`. Leave False inside `kfuse.stack`.

    Keyword Args:
        branch_names (list[str] | None): optional branch names (set by `kfuse.stack`).

    Example:

    ```python
    import numpy as np
    import kfuse

    fuse = kfuse.layers.GatedFusion(units=8, return_gates=True)
    out, gates = fuse([np.ones((2, 5)), np.ones((2, 3))])  # (2, 8) and (2, 2)
    ```
    """

    def __init__(self, units=64, gate="branch", activation="tanh", return_gates=False, **kwargs):
        super().__init__(**kwargs)
        self.units = check_units("GatedFusion", units)
        if gate not in ("branch", "feature"):
            raise ValueError(f"GatedFusion: `gate` must be 'branch' or 'feature'; received {gate!r}")
        self.gate = gate
        self.activation = keras.activations.get(activation)
        self.return_gates = bool(return_gates)
        self.projections = []
        self.gate_dense = None

    def build(self, input_shape):
        shapes = self._check_shapes(input_shape)
        self._check_flat(shapes)
        count = len(shapes)
        self.projections = []
        for i, shape in enumerate(shapes):
            dense = keras.layers.Dense(self.units, name=f"projection_{i}", dtype=self.dtype_policy)
            dense.build(shape)
            self.projections.append(dense)
        gates = count if self.gate == "branch" else count * self.units
        self.gate_dense = keras.layers.Dense(gates, name="gate", dtype=self.dtype_policy)
        self.gate_dense.build((None, sum(s[-1] for s in shapes)))
        self.built = True

    def fuse(self, inputs, presence):
        count = len(inputs)
        hidden = []
        gate_inputs = []
        for i, x in enumerate(inputs):
            hidden.append(self.activation(self.projections[i](x)))
            gate_inputs.append(x if presence is None else x * presence_column(presence, i, x))
        hidden = ops.stack(hidden, axis=1)
        logits = self.gate_dense(ops.concatenate(gate_inputs, axis=-1))
        if self.gate == "feature":
            logits = ops.reshape(logits, (-1, count, self.units))
        gates = masked_softmax(logits, presence, axis=1)
        weights = gates if self.gate == "feature" else ops.expand_dims(gates, -1)
        fused = ops.sum(weights * hidden, axis=1)
        return [fused, gates] if self.return_gates else fused

    def compute_output_shape(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        out = (shapes[0][0], self.units)
        if not self.return_gates:
            return out
        count = len(shapes)
        gates = (shapes[0][0], count) if self.gate == "branch" else (shapes[0][0], count, self.units)
        return [out, gates]

    @staticmethod
    def cost_formula(widths, units=64, gate="branch", **_):
        """Parameters, FLOPs per sample and output width, from the branch widths."""
        widths = [int(w) for w in widths]
        count, total = len(widths), sum(widths)
        gates = count if gate == "branch" else count * units
        params = sum((w + 1) * units for w in widths) + (total + 1) * gates
        flops = sum(2 * w * units + units for w in widths) + 2 * total * gates + gates
        return {"params": params, "flops": flops + 2 * count * units, "output_width": units}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "gate": self.gate,
                "activation": keras.activations.serialize(self.activation),
                "return_gates": self.return_gates,
            }
        )
        return config
