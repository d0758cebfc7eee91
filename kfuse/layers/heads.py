"""Output heads. The output activation is stated by the head, never guessed.

Classification heads output **logits**; their loss is built with `from_logits=True`, and
`head.activation` ("softmax" or "sigmoid") turns logits into probabilities (the fused
model's `predict_proba` and the SavedModel export apply it). Regression outputs values.
"""

import keras
import numpy as np

from kfuse.utils.outputs import to_probabilities  # noqa: F401  (the one route, re-exported)


class Head:
    """Base class: a Dense output layer plus its loss, metrics, label check and probabilities.

    Heads are registered Keras serializables (`keras.saving.serialize_keras_object(head)`
    and `deserialize_keras_object` round-trip them; `get_config` holds the constructor
    arguments).
    """

    #: "softmax", "sigmoid" or None: what turns the output into probabilities
    activation = None
    #: the name of the output layer (and of the export's output)
    output_name = "prediction"

    def __init__(self, units, kernel_regularizer=None, name=None):
        if not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"{type(self).__name__}: `units` must be a positive int; received {units!r}")
        self.units = int(units)
        self.kernel_regularizer = kernel_regularizer
        self.name = name or self.output_name

    def __call__(self, x):
        return keras.layers.Dense(
            self.units,
            kernel_regularizer=self.kernel_regularizer,
            dtype="float32",  # keep the output float32 under mixed precision
            name=self.name,
        )(x)

    def loss(self):
        raise TypeError(f"{type(self).__name__} defines no loss")

    def metrics(self):
        return []

    def check_labels(self, y):
        """Raise a ValueError explaining how `y` misfits this head; return None if fine."""

    def probabilities(self, logits):
        """Probabilities from this head's outputs: softmax or sigmoid, as numpy (float).

        Example:

        ```python
        import numpy as np, kfuse

        kfuse.layers.heads.Classification(2).probabilities(np.array([[0.0, 0.0]]))  # [[0.5, 0.5]]
        kfuse.layers.heads.Binary().probabilities(np.array([[0.0]]))                # [[0.5]]
        ```
        """
        return to_probabilities(logits, self.activation, where=repr(self))

    def get_config(self):
        return {
            "units": self.units,
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)
            if self.kernel_regularizer is not None
            else None,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("kernel_regularizer") is not None:
            config["kernel_regularizer"] = keras.regularizers.deserialize(config["kernel_regularizer"])
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}(units={self.units})"


def _refuse_text(y, head):
    """Labels must be numbers: strings (or other objects) get a clear error, not a numpy one."""
    if y.dtype.kind in "USO":
        sample = [str(v) for v in y.ravel()[:3]]
        raise ValueError(
            f"The head {head} takes numeric labels; received {y.dtype} labels (e.g. {sample}). "
            "Encode them as class ids first, e.g. "
            "sklearn.preprocessing.LabelEncoder().fit_transform(y) (its classes_ maps the ids back)"
        )


def _shape_text(y):
    return f"shape {tuple(y.shape)}, dtype {y.dtype}"


@keras.saving.register_keras_serializable(package="kfuse")
class Classification(Head):
    """Single-label classification into `num_classes`: logits out, softmax for probabilities.

    Args:
        num_classes (int): int >= 2.
        labels (str): "sparse" (integer class ids, the default) or "one_hot".

    Example:

    ```python
    import kfuse
    head = kfuse.layers.heads.Classification(10)  # == head=10 in kfuse.stack
    head.loss()  # SparseCategoricalCrossentropy(from_logits=True)
    ```
    """

    activation = "softmax"
    output_name = "logits"

    def __init__(self, num_classes, labels="sparse", kernel_regularizer=None, name=None):
        if isinstance(num_classes, (int, np.integer)) and num_classes < 2:
            raise ValueError(
                f"Classification needs num_classes >= 2; received {num_classes}. "
                "Use kfuse.layers.heads.Binary() for two classes with one logit."
            )
        if labels not in ("sparse", "one_hot"):
            raise ValueError(f"Classification: `labels` must be 'sparse' or 'one_hot'; received {labels!r}")
        super().__init__(num_classes, kernel_regularizer, name)
        self.labels = labels

    @property
    def num_classes(self):
        return self.units

    def loss(self):
        if self.labels == "one_hot":
            return keras.losses.CategoricalCrossentropy(from_logits=True)
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def metrics(self):
        if self.labels == "one_hot":
            return [keras.metrics.CategoricalAccuracy(name="accuracy")]
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def check_labels(self, y):
        _refuse_text(np.asarray(y), self)
        n = self.units
        if self.labels == "one_hot":
            if y.ndim != 2 or y.shape[1] != n:
                raise ValueError(
                    f"The head expects one-hot labels of shape (batch, {n}); received {_shape_text(y)}."
                )
            return
        if y.ndim == 2 and y.shape[1] == n and n > 1:
            raise ValueError(
                f"The head expects integer class ids of shape (batch,), but the labels look "
                f"one-hot ({_shape_text(y)}). Pass y.argmax(-1), or use "
                f"kfuse.layers.heads.Classification({n}, labels='one_hot')."
            )
        if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
            raise ValueError(
                f"The head expects integer class ids of shape (batch,); received {_shape_text(y)}."
            )
        if y.size and not np.issubdtype(y.dtype, np.integer):
            if not np.all(np.equal(np.mod(y, 1), 0)):
                raise ValueError(
                    f"The head expects integer class ids in [0, {n}); received non-integer "
                    f"labels ({_shape_text(y)}, e.g. {y.ravel()[:3]})."
                )
        if y.size and (y.min() < 0 or y.max() >= n):
            raise ValueError(
                f"The head has {n} classes, so labels must lie in [0, {n}); received labels "
                f"from {int(y.min())} to {int(y.max())}. Set head={int(y.max()) + 1} or remap labels."
            )

    def get_config(self):
        config = super().get_config()
        config["num_classes"] = config.pop("units")
        return {**config, "labels": self.labels}


class SigmoidHead(Head):
    """A head with one sigmoid per unit (`Binary`, `MultiLabel`): logits out, binary
    cross-entropy from logits, accuracy at logit 0, labels 0 or 1."""

    activation = "sigmoid"
    output_name = "logits"
    #: the head's name in messages
    what = "sigmoid"

    def loss(self):
        return keras.losses.BinaryCrossentropy(from_logits=True)

    def metrics(self):
        return [keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)]

    def check_labels(self, y):
        """Numeric labels of the head's shape (`_expected_shape`), each 0 or 1."""
        _refuse_text(np.asarray(y), self)
        expected = self._expected_shape(y)
        if expected:
            raise ValueError(f"The {self.what} head expects {expected}; received {_shape_text(y)}.")
        bad = np.setdiff1d(np.unique(y), [0, 1])
        if bad.size:
            raise ValueError(f"The {self.what} head expects labels 0 or 1; received also {bad[:5]}.")

    def _expected_shape(self, y):
        """What the labels should be when `y` is not (batch, units); None when it is."""
        if y.ndim != 2 or y.shape[1] != self.units:
            return f"0/1 labels of shape (batch, {self.units})"
        return None


@keras.saving.register_keras_serializable(package="kfuse")
class Binary(SigmoidHead):
    """Two-class classification with one logit; sigmoid gives P(class 1).

    Example:

    ```python
    import kfuse, numpy as np
    head = kfuse.layers.heads.Binary()  # one logit
    head.probabilities(np.array([[0.0], [2.0]]))  # P(class 1): [[0.5], [0.881]]
    ```
    """

    what = "binary"

    def __init__(self, kernel_regularizer=None, name=None):
        super().__init__(1, kernel_regularizer, name)

    def _expected_shape(self, y):
        """What the labels should be when `y`'s shape is not (batch,) or (batch, 1)."""
        if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
            return "labels of shape (batch,) or (batch, 1)"
        return None

    def get_config(self):
        config = super().get_config()
        del config["units"]
        return config


@keras.saving.register_keras_serializable(package="kfuse")
class MultiLabel(SigmoidHead):
    """Independent yes/no for each of `num_labels` labels: logits out, sigmoid per label.

    Example:

    ```python
    import kfuse, numpy as np
    head = kfuse.layers.heads.MultiLabel(3)
    head.check_labels(np.array([[1, 0, 1], [0, 0, 0]]))  # any number of labels per row: fine
    ```
    """

    what = "multi-label"

    def __init__(self, num_labels, kernel_regularizer=None, name=None):
        super().__init__(num_labels, kernel_regularizer, name)

    def get_config(self):
        config = super().get_config()
        config["num_labels"] = config.pop("units")
        return config


@keras.saving.register_keras_serializable(package="kfuse")
class Regression(Head):
    """Real-valued outputs (linear), mean squared error loss, MAE metric.

    Example:

    ```python
    import kfuse
    head = kfuse.layers.heads.Regression(2)  # two targets per row
    head.loss(), head.metrics()  # (MeanSquaredError, [MeanAbsoluteError(name="mae")])
    ```
    """

    activation = None
    output_name = "prediction"

    def __init__(self, units=1, kernel_regularizer=None, name=None):
        super().__init__(units, kernel_regularizer, name)

    def loss(self):
        return keras.losses.MeanSquaredError()

    def metrics(self):
        return [keras.metrics.MeanAbsoluteError(name="mae")]

    def check_labels(self, y):
        _refuse_text(np.asarray(y), self)
        expected = (self.units,) if self.units > 1 else ((), (1,))
        tail = tuple(y.shape[1:])
        ok = tail in expected if self.units == 1 else tail == expected
        if not ok:
            want = "(batch,) or (batch, 1)" if self.units == 1 else f"(batch, {self.units})"
            raise ValueError(f"The regression head expects targets of shape {want}; received {_shape_text(y)}.")
        if not np.issubdtype(y.dtype, np.number):
            raise ValueError(f"The regression head expects numeric targets; received {_shape_text(y)}.")


def get_head(head):
    """Resolve `head=`: None, an int (classes), or a Head instance."""
    if head is None or isinstance(head, Head):
        return head
    if isinstance(head, (int, np.integer)) and not isinstance(head, bool):
        if head >= 2:
            return Classification(int(head))
        if head == 1:
            raise ValueError(
                "head=1 is ambiguous: an int is the number of classes (>= 2). For a yes/no "
                "task pass head=kfuse.layers.heads.Binary() (one sigmoid logit); for one regression "
                "target pass head=kfuse.layers.heads.Regression(1)"
            )
        raise ValueError(
            f"head={int(head)}: an int head is the number of classes and must be >= 2 "
            "(or pass kfuse.layers.heads.Binary() / kfuse.layers.heads.Regression(n))"
        )
    raise TypeError(
        "`head` must be an int (number of classes), a kfuse.layers.heads.* object "
        f"(Classification, Binary, MultiLabel, Regression) or None; received {head!r}"
    )


def head_from_config(config):
    """Rebuild a head from a fused model's `kfuse_info["head"]` (used when it is reloaded).

    Reads both the Keras serialization (`serialize_keras_object`, kfuse >= 0.2.0) and
    the flat dict of kfuse 0.1.0 (`{"class_name": ..., constructor arguments}`).
    """
    if not config:
        return None
    if "config" in config and "module" in config:
        return keras.saving.deserialize_keras_object(config)
    config = dict(config)
    cls = {c.__name__: c for c in (Classification, Binary, MultiLabel, Regression)}[config.pop("class_name")]
    return cls.from_config(config)


def head_config(head):
    """What a fused model stores for its head (a Keras serialization)."""
    return keras.saving.serialize_keras_object(head) if head is not None else None
