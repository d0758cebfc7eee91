"""`FusedModel`: the functional `keras.Model` that `kfuse.stack` returns."""

import keras
import numpy as np

from kfuse.branches.lora import apply_lora, has_lora, restart_zero_adapters
from kfuse.branches.raw_inputs import tokenized
from kfuse.distribute.strategy import entered_scope
from kfuse.inputs import checks as input_checks
from kfuse.inputs import names as input_naming
from kfuse.inputs import values as input_values
from kfuse.layers.heads import head_from_config
from kfuse.models import branch_values
from kfuse.models.branch_values import _PROBES  # noqa: F401 (the probes, read here as before)
from kfuse.models.top_weights import (
    TOP_WEIGHTS_MARK,  # noqa: F401 (importable here, as before)
    is_top_weights,
    save_top_weights,
)
from kfuse.trainers.predict_loop import predict_in_memory
from kfuse.trainers.predict_loop import supports as predicts_in_memory

#: the first kfuse version whose models hold `model.top`
TOP_VERSION = "0.2.0"


def check_finite_weights(model, where):
    """Raise a ValueError (``where`` first) naming ``model``'s first NaN / inf weight: the
    outputs of a frozen model with one are NaN, and so is every fused output.

    Example:

    ```python
    import keras
    from kfuse.models.fused import check_finite_weights
    check_finite_weights(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), "b")
    ```
    """
    for weight in model.weights:
        if "float" not in str(weight.dtype):
            continue
        if not bool(keras.ops.convert_to_numpy(keras.ops.all(keras.ops.isfinite(weight)))):
            raise ValueError(
                f"{where} has NaN or infinite values in its weight {weight.path!r}, so its "
                "outputs and every fused output would be NaN. Rebuild it from a finite model."
            )


@keras.saving.register_keras_serializable(package="kfuse")
class FusedModel(keras.Model):
    """A functional Keras model that knows its branches, fusion layer and head.

    It is an ordinary functional `keras.Model` (fit, evaluate, save, export, KerasTuner
    all work as usual) whose layers are its inputs, one sub-model per branch and
    `model.top`: the fusion, passthrough, meta-learner and head as ONE `keras.Model`,
    called on the branch outputs. Conveniences: a bare array is accepted where the model
    has one input, inputs are checked (row counts, NaN / inf: `allow_nonfinite=True`
    switches that off), `fit` checks labels against the head, `fit_head` trains the top
    on cached outputs of frozen branches, and `predict_proba`, `branch_outputs` and
    `fusion_layer` expose what was fused. A model built with `stack(..., strategy=s)`
    compiles and fits in `s`'s scope wherever it is called.

    Build it with `kfuse.stack`; reload it with `keras.saving.load_model`.

    Example:

    ```python
    import keras, numpy as np, kfuse

    base = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model = kfuse.stack([kfuse.Branch(base, name="a", inputs="x"),
                         kfuse.Branch(base, name="b", inputs="x")], head=3)
    model.fit(np.zeros((4, 8)), np.array([0, 1, 2, 0]), epochs=1, verbose=0)
    model.predict_proba(np.zeros((2, 8))).shape  # (2, 3)
    model.top_input_names  # ['a', 'b']: the top reads the branch outputs
    ```
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        info = kwargs.pop("kfuse_info", None) or {}
        strategy = kwargs.pop("strategy", None)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.kfuse_info = info
        self.kfuse_strategy = strategy

    # -- what was fused ---------------------------------------------------------------
    @property
    def kfuse_version(self):
        """The kfuse version that built the model ("0.1.0" for files without one)."""
        return self.kfuse_info.get("version", "0.1.0")

    @property
    def branch_names(self):
        return [b["name"] for b in self.kfuse_info.get("branches", [])]

    @property
    def input_names(self):
        return input_naming.input_names(self)

    @property
    def input_dtypes(self):
        """Input name -> the dtype its `keras.Input` declares."""
        structure = self.input
        tensors = structure.values() if isinstance(structure, dict) else keras.tree.flatten(structure)
        return {t.name: t.dtype for t in tensors}

    @property
    def input_shapes(self):
        """{input name: shape without the batch axis}."""
        return input_naming.input_shapes(self)

    @property
    def head(self):
        return head_from_config(self.kfuse_info.get("head"))

    @property
    def top(self):
        """The layers above the branches as one `keras.Model` (inputs: `top_input_names`)."""
        if "top_inputs" not in self.kfuse_info:
            raise ValueError(
                f"Model '{self.name}' was saved by kfuse {self.kfuse_version}, which built no "
                f"model.top (kfuse >= {TOP_VERSION} does). It still predicts, evaluates, "
                "trains and exports; for fit_head, the Stacker's cache or compare()'s "
                "contributions rebuild it with this kfuse's kfuse.stack(...) and copy the "
                "weights over layer by layer."
            )
        return super().get_layer("top")

    @property
    def top_input_names(self):
        """The top's inputs: the branch names, then the raw inputs it reads itself."""
        return [t.name for t in self.top.inputs]

    @property
    def top_raw_inputs(self):
        """The model inputs the top reads besides branch outputs (passthrough, presence)."""
        return [n for n in self.top_input_names if n not in self.branch_names]

    @property
    def fusion_layer(self):
        name = self.kfuse_info.get("fusion")
        return self.get_layer(name) if name else None

    def get_layer(self, name=None, index=None):
        """A layer of the model, or (by name) of `model.top` when the model has none of that name."""
        try:
            return super().get_layer(name=name, index=index)
        except ValueError:
            if name is None or "top_inputs" not in self.kfuse_info:
                raise
            return self.top.get_layer(name)

    def branch(self, name):
        """The sub-model of branch `name`."""
        if name not in self.branch_names:
            raise ValueError(f"No branch {name!r}; branches: {self.branch_names}")
        return super().get_layer(name)

    def branch_tensor(self, name, inputs=None):
        """Branch `name` called on `inputs` (default: this model's own `model.input`).

        `inputs` is a dict of input name -> symbolic tensor; the result is the branch
        output as a tensor of those inputs (a new call of the branch's sub-model).
        """
        info = next(b for b in self.kfuse_info["branches"] if b["name"] == name)
        sub = self.branch(name)
        inputs = self.input if inputs is None else inputs
        tensors = [inputs[k] for k in info["inputs"]]
        structure = sub.input
        if isinstance(structure, dict):
            return sub(dict(zip(structure, tensors, strict=True)))
        return sub(tensors[0] if len(tensors) == 1 else tensors)

    def branch_outputs(self, x, batch_size=256, verbose=0, names=None, check_finite=True):
        """Every branch's output on `x`, as a dict of branch name -> array (one pass); a
        branch with a NaN / inf output is refused by name and rows (`check_finite=False`:
        returned as they are)."""
        return branch_values.branch_outputs(self, x, batch_size, verbose, names, check_finite)

    def top_data(self, branch_values, x=None, rows=None):
        """The dict `model.top` reads: branch outputs plus its raw inputs (from `x`)."""
        pick = (lambda a: np.asarray(a)) if rows is None else (lambda a: np.asarray(a)[rows])
        data = {n: pick(branch_values[n]) for n in self.branch_names}
        raw = self.top_raw_inputs
        if raw:
            arrays = self.as_inputs(x)
            data.update({k: pick(input_values.as_numpy(arrays[k])) for k in raw})
        return data

    # -- training the top on cached branch outputs -------------------------------------
    def fit_head(
        self, x, y=None, epochs=1, batch_size=None, validation_data=None, cache_batch_size=1024,
        allow_nonfinite=False, **kwargs,
    ):  # fmt: skip
        """Train `model.top` on the frozen branches' cached outputs; returns the `History`.

        Every branch must be frozen: their outputs are computed once (one batched pass)
        and the epochs run only `model.top`, one traced call per epoch
        (`kfuse.trainers.epoch_loop.fit_top`), far faster than `fit` through the frozen
        branches. `x` is what `fit` takes (arrays, a dict, or a `tf.data.Dataset` of
        (x, y) pairs); so is `validation_data`. Also takes `seed` (the shuffling order).
        """
        return branch_values.fit_head(
            self, x, y, epochs, batch_size, validation_data, cache_batch_size, allow_nonfinite, **kwargs
        )

    # -- inputs and labels ------------------------------------------------------------
    def as_inputs(self, x):
        """`x` as a dict keyed by input name (a bare array for a one-input model; checked)."""
        names = self.input_names
        x = tokenized(self, x)  # a KerasHub Task branch's raw strings -> its tokens
        if self.kfuse_info.get("presence_input"):
            x = self._with_presence(x, names)
        if input_values.is_dataset(x) or not isinstance(x, (dict, list, tuple)) and not input_values.is_array_like(x):
            return input_naming.named(x, names, model_name=self.name, shapes=self.input_shapes) if input_values.is_pandas(x) else x
        return input_naming.named(x, names, model_name=self.name, shapes=self.input_shapes)

    def _checked(self, x, where, allow_nonfinite, y=None):
        """`as_inputs(x)` plus the row-count and NaN / inf checks on numpy data."""
        x = self.as_inputs(x)
        if input_values.is_dataset(x):
            input_checks.check_dataset_finite(x, self.input_names, where, allow_nonfinite)
            return x
        if isinstance(x, dict):
            input_checks.check_rows(x, y if input_values.is_array_like(y) else None, where)
            input_checks.check_finite(x, where, allow_nonfinite)
            input_checks.check_integral(x, self.input_dtypes, where)
        input_checks.check_finite_labels(y, where, allow_nonfinite)
        return x

    def check_frozen_weights(self, where="kfuse"):
        """Raise a ValueError naming a frozen branch with a NaN / inf weight: its outputs,
        and so every fused output and the loss, would be NaN.

        Example:

        ```python
        import keras, kfuse
        base = keras.Sequential([keras.Input((3,), name="x"), keras.layers.Dense(2)])
        model = kfuse.stack([kfuse.Branch(base, name="b", trainable=False)], head=2)
        model.check_frozen_weights()  # finite: no error
        ```
        """
        for name in self.branch_names:
            if not self.branch(name).trainable:
                check_finite_weights(self.branch(name), f"{where}: frozen branch '{name}'")

    def _with_presence(self, x, names):
        """Fill the "presence" input with ones (every branch present) when it is not given."""
        if not isinstance(x, dict):
            data = [n for n in names if n != "presence"]
            if len(data) != 1 or not input_values.is_array_like(x):
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
        if head is None or y is None or not input_values.is_array_like(y):
            return
        y = np.asarray(y)
        try:
            head.check_labels(y)
        except ValueError as error:
            raise ValueError(f"Model '{self.name}': labels do not fit the head {head}: {error}") from None

    def _check_dataset_labels(self, dataset):
        """The head's label check on the first batch of a tf.data.Dataset of (x, y, ...)."""
        spec = dataset.element_spec
        if self.head is None or not isinstance(spec, tuple) or len(spec) < 2:
            return
        if not hasattr(dataset, "take"):
            return  # a tf.distribute.DistributedDataset: its workers' labels are theirs to check
        for element in dataset.take(1):
            labels = element[1]
            if isinstance(labels, dict):
                return
            try:
                self.head.check_labels(np.asarray(labels))
            except ValueError as error:
                raise ValueError(
                    f"Model '{self.name}': the labels in the first batch of the tf.data.Dataset "
                    f"do not fit the head {self.head}: {error}"
                ) from None

    # -- Keras entry points -------------------------------------------------------------
    def strategy_scope(self):
        """The scope of the strategy the model was built under, unless already in it."""
        return entered_scope(getattr(self, "kfuse_strategy", None))

    def call(self, inputs, training=None, mask=None):
        return super().call(self.as_inputs(inputs), training=training, mask=mask)

    def compile(self, *args, **kwargs):
        with self.strategy_scope():
            return super().compile(*args, **kwargs)

    def compile_from_config(self, config):
        """Compile from a saved compile config (as Keras does; `compile` is overridden here)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            with self.strategy_scope():
                self.optimizer.build(self.trainable_variables)

    # -- weights files of the top alone -------------------------------------------------
    def save_top_weights(self, filepath, overwrite=True):
        """Write `model.top`'s layer weights alone, as a `.weights.h5` file.

        For a stack whose branches are frozen and shared (a tuning search's trials): the
        top is all that differs, and writing the bases again costs more than a short
        trial's epochs. `load_weights` on a stack of the same design reads the file back
        (into its top; its branches keep the weights they have). No optimizer state is
        written, as in a full checkpoint of a stack whose top trained on cached outputs.
        """
        save_top_weights(self.top, filepath, overwrite)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        """`keras.Model.load_weights`; a file of `save_top_weights` goes into `model.top`."""
        if is_top_weights(filepath):
            return self.top.load_weights(filepath, skip_mismatch=skip_mismatch, **kwargs)
        return super().load_weights(filepath, skip_mismatch=skip_mismatch, **kwargs)

    def fit(self, x=None, y=None, *args, allow_nonfinite=False, **kwargs):
        where = f"Model '{self.name}'.fit"
        self._check_labels(y)
        if input_values.is_dataset(x):
            self._check_dataset_labels(x)
        validation = kwargs.get("validation_data")
        if isinstance(validation, tuple) and len(validation) >= 2:
            self._check_labels(validation[1])
            checked = self._checked(validation[0], where + " validation_data", allow_nonfinite, validation[1])
            kwargs["validation_data"] = (checked,) + tuple(validation[1:])
        elif input_values.is_dataset(validation):
            kwargs["validation_data"] = self.as_inputs(validation)  # hub raw strings mapped
        x = self._checked(x, where, allow_nonfinite, y)
        if not allow_nonfinite:
            self.check_frozen_weights(where)
        if has_lora(self):
            restart_zero_adapters(self)  # reloaded adapters are all zero: they could not move
        with self.strategy_scope():
            history = super().fit(x, y, *args, **kwargs)
        if not allow_nonfinite and isinstance(x, dict):
            branch_values.diagnose_nonfinite_loss(self, history, x, where)
        return history

    def evaluate(self, x=None, y=None, *args, allow_nonfinite=False, **kwargs):
        self._check_labels(y)
        x = self._checked(x, f"Model '{self.name}'.evaluate", allow_nonfinite, y)
        with self.strategy_scope():
            return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, allow_nonfinite=False, **kwargs):
        """`keras.Model.predict`, the same result; faster on in-memory arrays.

        On numpy data (the TensorFlow backend, no strategy, no `steps`) the batches run
        through one cached traced function, not Keras's `tf.data` pipeline
        (`kfuse.trainers.predict_loop`): the same batches, callbacks and output, bit for bit.
        """
        x = self._checked(x, f"Model '{self.name}'.predict", allow_nonfinite)
        names = ("batch_size", "verbose", "steps", "callbacks")
        if len(args) <= len(names):
            options = {**dict(zip(names[: len(args)], args, strict=True)), **kwargs}  # Keras's order
            if options.get("steps") is None:
                options.pop("steps", None)
            if predicts_in_memory(self, x, options):
                return predict_in_memory(self, x, **options)
        with self.strategy_scope():
            return super().predict(x, *args, **kwargs)

    def predict_proba(self, x, **kwargs):
        """Probabilities from a classification head (softmax or sigmoid of the logits)."""
        head = self.head
        if head is None or head.activation is None:
            raise ValueError(
                f"Model '{self.name}' has head {head}, which gives no probabilities; use predict()"
            )
        return head.probabilities(self.predict(x, **kwargs))

    def get_config(self):
        config = super().get_config()
        config["kfuse_info"] = self.kfuse_info
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """As Keras rebuilds a functional model; a LoRA branch gets its adapters back
        (a `.keras` file holds their update folded into the base kernels)."""
        model = super().from_config(config, custom_objects=custom_objects)
        for info in model.kfuse_info.get("branches", []):
            if info.get("lora_rank"):
                apply_lora(model.get_layer(info["name"]), info["lora_rank"], info["name"])
        return model
