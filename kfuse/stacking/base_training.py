"""Training one base on some rows with its branch's own settings, and reading its outputs.

Per-branch settings come from `Branch(..., fit={...})`: any argument of `Model.fit`
(epochs, batch_size, callbacks, shuffle, class_weight, validation_split, ...) plus the
compile settings `optimizer`, `learning_rate`, `loss`, `metrics`, `run_eagerly`,
`jit_compile` and `steps_per_execution`.
"""

import inspect

import keras
import numpy as np

from kfuse.branches.branch import Branch, readapt_preprocessing
from kfuse.branches.outputs import head_loss
from kfuse.inputs.selection import feed
from kfuse.utils import outputs
from kfuse.utils.names import did_you_mean
from kfuse.utils.optimizers import new_optimizer

COMPILE_KEYS = (
    "optimizer",
    "learning_rate",
    "loss",
    "metrics",
    "run_eagerly",
    "jit_compile",
    "steps_per_execution",
)
ROW_KEYS = ("x", "y", "sample_weight", "validation_data")
DEFAULTS = {"epochs": 10, "batch_size": 32, "verbose": 0}
METHOD_OUTPUT = {"predict_proba": "probabilities", "logits": "logits", "raw": "raw"}
AUX = "_aux"


def fit_keys():
    names = set(inspect.signature(keras.Model.fit).parameters) - {"self", *ROW_KEYS}
    return sorted(names | set(COMPILE_KEYS))


def check_fit_settings(branch):
    """Raise a ValueError naming the branch for settings `Model.fit` does not take."""
    valid = fit_keys()
    for key in branch.fit_settings:
        if key in ROW_KEYS:
            raise ValueError(
                f"Branch '{branch.name}': fit setting {key!r} depends on the rows, which the "
                "Stacker chooses per fold; pass data to Stacker.fit instead"
            )
        if key not in valid:
            hint = did_you_mean(key, valid, n=3)
            raise ValueError(
                f"Branch '{branch.name}': fit setting {key!r} is not an argument of "
                f"Model.fit or compile.{hint} Valid keys: {valid}"
            )
    epochs = branch.fit_settings.get("epochs", 1)
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(
            f"Branch '{branch.name}': fit setting epochs must be a positive int; received {epochs!r}"
        )


def fresh_model(branch, input_shapes, head):
    """A new, untrained model of `branch` with fresh weights.

    A model base is cloned (`keras.models.clone_model` re-initialises every weight); a
    callable base is rebuilt and given an auxiliary output layer `<name>_aux` shaped like
    the head, so it can be trained on its own.
    """
    if not branch.is_fresh:
        clone = branch.fresh_base()  # fresh weights, the base's adapted preprocessing kept
        clone.trainable = True
        return clone
    inner = branch.build_model(input_shapes)
    out = keras.layers.Dense(
        head.units, activation=head.activation, dtype="float32", name=branch.name + AUX
    )(inner.outputs[0])
    model = keras.Model(inner.inputs, out, name=branch.name)
    model.trainable = True
    return model


def compile_base(model, branch, head):
    """Compile `model` with the branch's settings; returns the remaining fit settings."""
    settings = {**DEFAULTS, **branch.fit_settings}
    optimizer = new_optimizer(
        settings.pop("optimizer", "adam"), settings.pop("learning_rate", None)
    )
    loss = settings.pop("loss", None) or head_loss(model, head, f"Branch '{branch.name}'")
    compile_kwargs = {k: settings.pop(k) for k in COMPILE_KEYS[3:] if k in settings}
    compile_kwargs.setdefault("jit_compile", False)
    model.compile(optimizer=optimizer, loss=loss, **compile_kwargs)
    return settings


def prepare(model, branch, head, arrays, y, rows, seed, sample_weight=None):
    """Compile `model` with the branch's settings, seed, and feed it `rows`.

    Returns `(x, y, fit settings, shareable)`: what `fit` takes, and whether a
    `SharedFit` may train the model (not where its preprocessing was re-adapted: adapted
    vocabularies are lookup tables, not variables to copy).
    """
    settings = compile_base(model, branch, head)
    keras.utils.set_random_seed(seed)
    x = feed(model, branch.input_names, arrays, rows)
    shareable = True
    if branch.readapt:  # leak-free: preprocessing statistics from these rows only
        readapt_preprocessing(model, x, where=f"Branch '{branch.name}'")
        shareable = False
    if sample_weight is not None:
        settings["sample_weight"] = sample_weight if rows is None else sample_weight[rows]
    return x, (y if rows is None else y[rows]), settings, shareable


def feature_tap(branch, model, method):
    """The layer name to tap for stack_method 'features', or None."""
    if method != "features":
        return None
    if branch.tap is not None:
        return branch.tap
    if branch.is_fresh:
        aux = model.get_layer(branch.name + AUX)
        return next(layer.name for layer in model.layers if layer.output is aux.input)
    raise ValueError(
        f"Branch '{branch.name}': stack_method='features' needs a layer to tap; give the "
        "branch tap='layer_name' (e.g. the base's last hidden layer)"
    )


def as_branch(branch, model, method, name=None, trainable=False):
    """A Branch over the trained `model` handing over what `method` asks for."""
    tap = feature_tap(branch, model, method)
    output = "raw" if tap is not None else METHOD_OUTPUT[method]
    return Branch(
        model,
        name=name or branch.name,
        inputs=branch.input_names,
        trainable=trainable,
        tap=tap,
        output=output,
        select=branch.select if model is branch.base else None,  # fold models: reduced
        pool=branch.pool if model is branch.base else None,  # a frozen base pools as it did
    )


def feature_model(branch, model, method, input_shapes, name=None):
    """A model computing the meta-features of `branch` from the trained `model`."""
    return as_branch(branch, model, method, name=name).build_model(input_shapes)


def predict(model, input_names, arrays, rows=None, batch_size=1024):
    x = feed(model, input_names, arrays, rows)
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


def score(head, output, y, from_logits=None):
    """Accuracy for classification heads, mean squared error for regression.

    `from_logits` says whether a sigmoid head's `output` holds logits (threshold 0) or
    probabilities (threshold 0.5); None guesses from the range.
    """
    output = np.asarray(output, "float64")
    if head.activation == "sigmoid" and from_logits is None:
        from_logits = not np.all((output >= 0) & (output <= 1))
    return outputs.score(head.activation, output, y, threshold=0.0 if from_logits else 0.5)
