"""`Worker`: a compiled copy of one architecture that trains other models' variables.

Tracing a model's training graph is most of a short fit's time, and the graph belongs to
the model it was traced for. So kfuse keeps one compiled copy (a worker) per architecture
and trains every model of it in the worker's variables: `load` puts the model's fresh
variables into the worker (weights, BatchNormalization statistics and the seed state of
Dropout and other random layers: `model.variables`, not only `get_weights()`) and the
optimizer back to its untrained state; `store` copies the trained variables back. The
model thus trains exactly as it would alone. The one way kfuse resets a compiled copy:
`kfuse.trainers.shared_fit`, `kfuse.trainers.side_by_side` and the ensembles' reused trainers use it.
"""

import json

import keras

from kfuse.branches.state import clone_with_state


class Worker:
    """A compiled model whose variables other models of its architecture train in.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.trainers.worker import Worker

    def build():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile("adam", "mse")
        return model

    worker, member = Worker(build()), build()
    worker.load(member)  # the member's weights, the optimizer untrained
    worker.model.fit(np.ones((8, 4)), np.zeros((8, 2)), verbose=0)
    worker.store(member)  # the member holds the trained weights
    ```
    """

    def __init__(self, model):
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        self.model = model
        self._untrained = [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]

    def fits(self, model):
        """Whether `model` can train in this worker (same variables, optimizer and loss)."""
        return same_architecture(self.model, model)

    def load(self, model):
        """The worker set to `model`'s variables, its optimizer to its untrained state."""
        for target, source in zip(self.model.variables, model.variables, strict=True):
            target.assign(source)
        self.reset_optimizer()

    def reset_optimizer(self):
        """The optimizer back to its untrained state (step count, moments), as a new one."""
        for variable, value in zip(self.model.optimizer.variables, self._untrained, strict=True):
            variable.assign(value)

    def store(self, model):
        """`model` given the worker's (trained) variables."""
        for target, source in zip(model.variables, self.model.variables, strict=True):
            target.assign(source)


def copy_compiled(model):
    """A copy of `model` compiled as it is, or None where its compile settings do not copy."""
    try:
        worker = clone_with_state(model, weights=True)
        worker.compile_from_config(model.get_compile_config())
    except Exception:  # a custom loss or optimizer without a config: no sharing
        return None
    if worker.optimizer is None:
        return None
    return worker


def same_architecture(a, b):
    """Whether models `a` and `b` are one architecture (`architecture`), with variables of
    one shape and dtype, one optimizer and one loss: whether one can train in the other's
    variables. Variables alone do not tell: a ReLU and a tanh network, or two Dropout
    rates, have the same ones."""
    if len(a.variables) != len(b.variables):
        return False
    if any(u.shape != v.shape or u.dtype != v.dtype for u, v in zip(a.variables, b.variables, strict=True)):
        return False
    if type(a.optimizer) is not type(b.optimizer) or _config(a.optimizer) != _config(b.optimizer):
        return False
    if type(a.loss) is not type(b.loss) or _config(a.loss) != _config(b.loss):
        return False
    return architecture(a) == architecture(b)


def architecture(model):
    """`model`'s config as one string, its layers' own names aside.

    Two builds of one builder differ only in the names Keras numbers (`dense_3`,
    `dense_7`): every name a layer config declares is replaced, wherever it appears (the
    graph's links name layers), by its place in the config. A model whose config cannot
    be read is its own architecture (nothing else matches it).

    Example:

    ```python
    import keras
    from kfuse.trainers.worker import architecture

    def build(activation):
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation=activation)])

    assert architecture(build("relu")) == architecture(build("relu"))
    assert architecture(build("relu")) != architecture(build("tanh"))
    ```
    """
    try:
        config = model.get_config()
    except Exception:  # a subclassed model without get_config
        return f"unreadable:{id(model)}"
    names = {}

    def collect(value):
        if isinstance(value, dict):
            inner = value.get("config")
            if "class_name" in value and isinstance(inner, dict) and isinstance(inner.get("name"), str):
                names.setdefault(inner["name"], f"#{len(names)}")
            for item in value.values():
                collect(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                collect(item)

    def canonical(value):
        if isinstance(value, dict):
            return {key: canonical(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [canonical(item) for item in value]
        return names.get(value, value) if isinstance(value, str) else value

    collect(config)
    names.setdefault(config.get("name"), "#model") if isinstance(config.get("name"), str) else None
    return json.dumps(canonical(config), sort_keys=True, default=repr)


def _config(obj):
    config = dict(obj.get_config()) if hasattr(obj, "get_config") else {"value": repr(obj)}
    config.pop("name", None)
    return config
