"""`FusedModel`: the functional `keras.Model` that `kfuse.stack` returns."""

import keras
import numpy as np

from kfuse.heads import head_from_config


@keras.saving.register_keras_serializable(package="kfuse")
class FusedModel(keras.Model):
    """A functional Keras model that knows its branches, fusion layer and head.

    It is an ordinary functional `keras.Model` (fit, evaluate, save, export, KerasTuner
    all work as usual) with a few conveniences: a bare array is accepted where the model
    has one input, `fit` checks labels against the head before training, and
    `predict_proba`, `branch_outputs` and `fusion_layer` expose what was fused.

    Build it with `kfuse.stack`; reload it with `keras.saving.load_model`.

    Example:

    ```python
    import keras, numpy as np, kfuse

    base = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model = kfuse.stack([kfuse.Branch(base, name="a", inputs="x"),
                         kfuse.Branch(base, name="b", inputs="x")], head=3)
    model.fit(np.zeros((4, 8)), np.array([0, 1, 2, 0]), epochs=1, verbose=0)
    model.predict_proba(np.zeros((2, 8))).shape  # (2, 3)
    ```
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        info = kwargs.pop("kfuse_info", None) or {}
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.kfuse_info = info

    # -- what was fused ---------------------------------------------------------------
    @property
    def branch_names(self):
        return [b["name"] for b in self.kfuse_info.get("branches", [])]

    @property
    def input_names(self):
        return list(self.kfuse_info.get("inputs", {}))

    @property
    def head(self):
        return head_from_config(self.kfuse_info.get("head"))

    @property
    def fusion_layer(self):
        name = self.kfuse_info.get("fusion")
        return self.get_layer(name) if name else None

    def branch(self, name):
        """The sub-model of branch `name`."""
        if name not in self.branch_names:
            raise ValueError(f"No branch {name!r}; branches: {self.branch_names}")
        return self.get_layer(name)

    def branch_outputs(self, x, batch_size=256, verbose=0):
        """Every branch's output on `x`, as a dict of branch name -> array (one pass)."""
        outputs = [self.branch_tensor(n) for n in self.branch_names]
        probe = keras.Model(self.inputs, outputs)
        values = probe.predict(self.as_inputs(x), batch_size=batch_size, verbose=verbose)
        if len(self.branch_names) == 1:
            values = [values]
        return dict(zip(self.branch_names, values, strict=True))

    def branch_tensor(self, name):
        """The output tensor of branch `name` in this graph (not inside the sub-model)."""
        top_inputs = {id(t) for t in self.inputs}
        for node in self.get_layer(name)._inbound_nodes:
            if any(id(t) in top_inputs for t in node.input_tensors):
                return node.output_tensors[0]
        raise ValueError(f"Branch {name!r} is not connected to the inputs of model '{self.name}'")

    # -- training the top on cached branch outputs -------------------------------------
    def head_model(self):
        """The part above the branches as a model sharing this model's layers.

        Its inputs are the branch outputs (then the raw inputs, where passthrough or a
        presence input feeds the top); training it trains this model's fusion,
        meta-learner and head.
        """
        from kfuse.training.cache import top_model

        return top_model(self)

    def fit_head(self, x, y, epochs=1, batch_size=None, validation_data=None, cache_batch_size=1024, **kwargs):
        """Train fusion + meta-learner + head on the frozen branches' cached outputs.

        Every branch must be frozen: their outputs are computed once (one batched pass),
        and the epochs then run only the small top of the graph, one traced call per
        epoch (`kfuse.training.cache`), which is far faster than `fit` through the
        frozen branches. Takes `fit`'s arguments (plus `seed`, the shuffling order);
        returns the Keras `History`.
        """
        from kfuse.training.cache import compile_top, fit_top, graph_features, top_raw_inputs

        trainable = [n for n in self.branch_names if self.get_layer(n).trainable]
        if trainable:
            raise ValueError(
                f"fit_head trains on cached branch outputs, so every branch must be frozen; "
                f"branches {trainable} are trainable. Use fit(), or Branch(..., trainable=False)."
            )
        if self.optimizer is None or not self.compiled:
            raise ValueError(f"Model '{self.name}' is not compiled; compile it (or stack(compile=True)) first")
        self._check_labels(y)
        top = compile_top(self.head_model(), self, metrics=self.head.metrics() if self.head else None)
        raw = top_raw_inputs(self)

        def features(data):
            data = self.as_inputs(data)
            outs = graph_features(self, self.branch_names, data, batch_size=cache_batch_size)
            return [outs[n] for n in self.branch_names] + [np.asarray(data[k]) for k in raw]

        if validation_data is not None:
            self._check_labels(validation_data[1])
            validation_data = (features(validation_data[0]),) + tuple(validation_data[1:])
        return fit_top(
            top, features(x), np.asarray(y), epochs=epochs, batch_size=batch_size,
            validation_data=validation_data, **kwargs,
        )  # fmt: skip

    # -- inputs and labels ------------------------------------------------------------
    def as_inputs(self, x):
        """Accept a bare array (or tensor) for a one-input model; check dict keys."""
        names = self.input_names
        if self.kfuse_info.get("presence_input"):
            x = self._with_presence(x, names)
        if isinstance(x, dict):
            missing = [n for n in names if n not in x]
            if missing:
                raise ValueError(
                    f"Model '{self.name}' reads inputs {names}; the data lacks {missing} "
                    f"(received keys {sorted(x)})"
                )
            return {n: x[n] for n in names}
        if len(names) == 1 and _is_array_like(x):
            return {names[0]: x}
        return x

    def _with_presence(self, x, names):
        """Fill the "presence" input with ones (every branch present) when it is not given."""
        if not isinstance(x, dict):
            data = [n for n in names if n != "presence"]
            if len(data) != 1 or not _is_array_like(x):
                return x
            x = {data[0]: x}
        if "presence" in x or not x:
            return x
        rows = tuple(getattr(next(iter(x.values())), "shape", np.shape(next(iter(x.values())))))[0]
        if rows is None:
            return x
        return {**x, "presence": np.ones((rows, len(self.branch_names)), "float32")}

    def _check_labels(self, y):
        head = self.head
        if head is None or y is None or not _is_array_like(y):
            return
        y = np.asarray(y)
        try:
            head.check_labels(y)
        except ValueError as error:
            raise ValueError(f"Model '{self.name}': labels do not fit the head {head}: {error}") from None

    def call(self, inputs, training=None, mask=None):
        return super().call(self.as_inputs(inputs), training=training, mask=mask)

    def fit(self, x=None, y=None, *args, **kwargs):
        self._check_labels(y)
        validation = kwargs.get("validation_data")
        if isinstance(validation, tuple) and len(validation) >= 2:
            self._check_labels(validation[1])
            kwargs["validation_data"] = (self.as_inputs(validation[0]),) + tuple(validation[1:])
        return super().fit(self.as_inputs(x), y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check_labels(y)
        return super().evaluate(self.as_inputs(x), y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        return super().predict(self.as_inputs(x), *args, **kwargs)

    def predict_proba(self, x, **kwargs):
        """Probabilities from a classification head (softmax or sigmoid of the logits)."""
        head = self.head
        if head is None or head.activation is None:
            raise ValueError(
                f"Model '{self.name}' has head {head}, which gives no probabilities; use predict()"
            )
        logits = self.predict(x, **kwargs)
        if head.activation == "softmax":
            shifted = logits - logits.max(axis=-1, keepdims=True)
            e = np.exp(shifted)
            return e / e.sum(axis=-1, keepdims=True)
        return 1.0 / (1.0 + np.exp(-logits))

    def get_config(self):
        config = super().get_config()
        config["kfuse_info"] = self.kfuse_info
        return config


def _is_array_like(x):
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, dict)
