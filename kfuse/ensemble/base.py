"""What every ensemble shares: members from a spec, their fit loop, seeds, progress, resume.

A member spec is a builder callable (no arguments, returns a `keras.Model`), a
`keras.Model` (cloned with fresh weights for each member) or a list of such specs (a
heterogeneous ensemble: member i uses spec i modulo the list length). Members the spec
leaves uncompiled are compiled with Adam and the task's loss (sparse cross-entropy, from
logits when the model ends linear; MSE for regression). kfuse compiles members with
`jit_compile=False`: XLA's compile time (seconds per member on CPU) outweighs its gain on
the small networks ensembles hold.

`work_dir` keeps one `.keras` file and one `.npz` state file per finished member, plus
`run.json`, the configuration fingerprint: a second `fit` with the same configuration
and data resumes where the first stopped; another configuration is refused.
"""

import hashlib
import json
import os

import keras
import numpy as np

from kfuse import epoch_loop
from kfuse.branch_outputs import final_activation, final_layer
from kfuse.jsonable import jsonable as _jsonable

FINGERPRINT = "run.json"


# -- inputs ---------------------------------------------------------------------------------
def n_rows(x):
    """Rows of an array or of a dict of arrays (all must agree)."""
    if isinstance(x, dict):
        counts = {k: len(v) for k, v in x.items()}
        if len(set(counts.values())) != 1:
            raise ValueError(f"Inputs have different row counts {counts}; every input needs one row per sample")
        return next(iter(counts.values()))
    return len(x)


def take(x, rows):
    """Rows `rows` of an array or a dict of arrays (in the forms `kfuse.inputs` takes:
    DataFrames, Series, lists, numpy str arrays)."""
    from kfuse.inputs import user_value

    if isinstance(x, dict):
        return {k: np.asarray(user_value(v))[rows] for k, v in x.items()}
    return np.asarray(user_value(x))[rows]


def check_xy(x, y, who):
    if x is None or y is None:
        raise ValueError(f"{who}.fit needs x and y; received x={type(x).__name__}, y={type(y).__name__}")
    y = np.asarray(y)
    if n_rows(x) != len(y):
        raise ValueError(f"{who}.fit: x has {n_rows(x)} rows but y has {len(y)}; give one label per row")
    return y


def check_positive_int(value, name, who):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{who}: `{name}` must be an integer >= 1; received {value!r}")
    return int(value)


def check_positive_number(value, name, who):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{who}: `{name}` must be a number > 0; received {value!r}")
    return value


def is_classification_labels(y):
    y = np.asarray(y)
    return y.ndim == 1 and np.issubdtype(y.dtype, np.integer)


# -- member specs ---------------------------------------------------------------------------
def spec_list(estimator, who):
    specs = list(estimator) if isinstance(estimator, (list, tuple)) else [estimator]
    if not specs:
        raise ValueError(f"{who}: `estimator` is an empty list; give at least one builder or keras.Model")
    for i, spec in enumerate(specs):
        if not (isinstance(spec, keras.Model) or callable(spec)):
            raise TypeError(
                f"{who}: estimator #{i} must be a keras.Model or a callable that builds one; "
                f"received {type(spec).__name__}"
            )
    return specs


def spec_name(spec):
    if isinstance(spec, keras.Model):
        return f"model:{spec.name}:{spec.count_params()}"
    return f"builder:{getattr(spec, '__module__', '')}.{getattr(spec, '__qualname__', repr(spec))}"


def ends_linear(model):
    layer = final_layer(model)
    act, _ = final_activation(layer) if layer is not None else (None, False)
    return act == "linear"


def new_member(spec, seed, task, who, index):
    """A fresh, compiled member network built from `spec` under `seed`."""
    keras.utils.set_random_seed(int(seed))
    if isinstance(spec, keras.Model):
        model = keras.models.clone_model(spec)
        if getattr(spec, "optimizer", None) is not None and getattr(spec, "loss", None) is not None:
            optimizer = keras.optimizers.get(
                {"class_name": spec.optimizer.__class__.__name__, "config": spec.optimizer.get_config()}
            )
            model.compile(optimizer=optimizer, loss=spec.loss, jit_compile=False)
    else:
        model = spec()
        if not isinstance(model, keras.Model):
            raise TypeError(
                f"{who}: the builder for member_{index} returned {type(model).__name__}, not a keras.Model"
            )
    if getattr(model, "optimizer", None) is None or getattr(model, "loss", None) is None:
        model.compile(optimizer="adam", loss=default_loss(model, task), jit_compile=False)
    return model


def default_loss(model, task):
    if task == "regression":
        return "mse"
    return keras.losses.SparseCategoricalCrossentropy(from_logits=ends_linear(model))


def member_fit_settings(fit_params, index, who):
    """The fit keyword arguments of member `index` (one dict for all, or one per member)."""
    if fit_params is None:
        return {}
    if isinstance(fit_params, dict):
        return dict(fit_params)
    if isinstance(fit_params, (list, tuple)):
        if not fit_params:
            raise ValueError(f"{who}: `fit_params` is an empty list")
        return dict(fit_params[index % len(fit_params)] or {})
    raise TypeError(f"{who}: `fit_params` must be a dict or a list of dicts; received {type(fit_params).__name__}")


def fit_member(model, x, y, settings, sample_weight=None, callbacks=(), pool=None):
    """Train one member: one traced call per epoch where the settings allow it
    (`epoch_loop.supports`); with `pool` (a `kfuse.shared_fit.FitPool`), fresh members of
    one architecture also share that traced function (one trace, not one per member)."""
    settings = dict(settings)
    settings.setdefault("verbose", 0)
    extra = list(settings.pop("callbacks", []) or []) + list(callbacks)
    fit = pool.fit if pool is not None else epoch_loop.fit
    return fit(model, x, y, sample_weight=sample_weight, callbacks=extra or None, **settings)


def probabilities(model, x, batch_size=256):
    """Class probabilities of a member (softmax applied when it ends linear)."""
    out = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype="float64")
    if ends_linear(model):
        if out.shape[-1] == 1:
            return 1.0 / (1.0 + np.exp(-out))
        out = out - out.max(axis=-1, keepdims=True)
        e = np.exp(out)
        return e / e.sum(axis=-1, keepdims=True)
    return out


# -- resume ---------------------------------------------------------------------------------
def data_digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            continue
        if isinstance(a, dict):
            for k in sorted(a):
                h.update(k.encode())
                h.update(np.ascontiguousarray(a[k]).tobytes())
        else:
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _spec_or_repr(value):
    """A member spec (a keras.Model or builder) by `spec_name`; any other value by `repr`."""
    if isinstance(value, keras.Model) or callable(value):
        return spec_name(value)
    return repr(value)


def jsonable(value):
    """`kfuse.jsonable.jsonable`, with member specs named by `spec_name`."""
    return _jsonable(value, leaf=_spec_or_repr)


class MemberStore:
    """Finished members under `work_dir` (nothing on disk when `path` is None)."""

    def __init__(self, path, fingerprint, who):
        self.path = None if path is None else os.fspath(path)
        self.fingerprint = fingerprint
        if self.path is None:
            return
        os.makedirs(self.path, exist_ok=True)
        file = os.path.join(self.path, FINGERPRINT)
        if os.path.exists(file):
            with open(file) as f:
                old = json.load(f)
            if old != fingerprint:
                differ = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
                raise ValueError(
                    f"{who}: work_dir {self.path!r} holds a run of another configuration "
                    f"(differs in: {', '.join(differ)}); kfuse will not mix the two runs. Use "
                    f"another work_dir, or delete {self.path!r} to start over."
                )
        else:
            with open(file + ".tmp", "w") as f:
                json.dump(fingerprint, f, indent=1, sort_keys=True)
            os.replace(file + ".tmp", file)

    def has(self, index):
        return self.path is not None and os.path.exists(os.path.join(self.path, f"member_{index}.npz"))

    def save(self, index, model, **state):
        if self.path is None:
            return
        file = os.path.join(self.path, f"member_{index}")
        model.save(file + ".tmp.keras")
        os.replace(file + ".tmp.keras", file + ".keras")
        np.savez(file + ".tmp.npz", **{k: np.asarray(v) for k, v in state.items()})
        os.replace(file + ".tmp.npz", file + ".npz")

    def load(self, index):
        file = os.path.join(self.path, f"member_{index}")
        model = keras.saving.load_model(file + ".keras")
        with np.load(file + ".npz") as d:
            state = {k: d[k] for k in d.files}
        return model, state


class BaseEnsemble:
    """Shared fit machinery; subclasses implement `_fit(x, y, store, bar)` and `_graph()`."""

    task = "classification"

    def _who(self):
        return type(self).__name__

    def _fingerprint(self, x, y, *extra):
        params = {k: jsonable(v) for k, v in sorted(vars(self).items()) if not k.endswith("_") and k != "work_dir"}
        return {"class": self._who(), "params": json.dumps(params, sort_keys=True), "data": data_digest(x, y, *extra)}

    def _progress(self, total):
        return keras.utils.Progbar(max(int(total), 1), verbose=1 if self.verbose else 0, unit_name="member")

    def _seed(self, index):
        base = 0 if self.random_state is None else int(self.random_state)
        return base * 1000 + index

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise ValueError(f"{self._who()} is not fitted yet: call .fit(x, y) first")

    def predict_proba(self, x, batch_size=256):
        """Class probabilities (classification) of the fused graph."""
        self._check_fitted()
        return np.asarray(self.model_.predict(x, batch_size=batch_size, verbose=0))

    def predict(self, x, batch_size=256):
        """Class ids (classification) or values (regression) from the fused graph."""
        out = self.predict_proba(x, batch_size=batch_size)
        if getattr(self, "task_", self.task) == "regression":
            return out
        return self.classes_[np.argmax(out, axis=-1)]

    def score(self, x, y):
        """Accuracy (classification) or R^2 (regression), as scikit-learn's `score`."""
        y = np.asarray(y)
        pred = self.predict(x)
        if getattr(self, "task_", self.task) == "regression":
            pred = pred.reshape(y.shape)
            return float(1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum())
        return float(np.mean(pred == y))

    def get_params(self, deep=False):
        """The constructor arguments, as scikit-learn's `get_params`."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}


# -- fewer traces ---------------------------------------------------------------------------
def copy_network(model):
    """An uncompiled copy of a network with its current weights."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


class Trainers:
    """One compiled trainer network per spec, re-initialised for every member.

    Keras traces a model's train and predict functions once per model; boosting trains
    its members one after another, so kfuse trains them all on one network per spec:
    member i gets the fresh initial weights of `new_member(spec, seed_i)` and a zeroed
    optimizer state, and is kept as a copy (`copy_network`) after training.
    """

    def __init__(self, specs, task, who, loss=None):
        self.specs, self.task, self.who, self.loss = specs, task, who, loss
        self.cache = {}

    def fresh(self, index, seed):
        key = index % len(self.specs)
        model = new_member(self.specs[key], seed, self.task, self.who, index)
        if self.loss is not None:
            model.compile(optimizer=model.optimizer, loss=self.loss, jit_compile=False)
        if key not in self.cache:
            model.optimizer.build(model.trainable_variables)
            start = [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]
            self.cache[key] = (model, start)
            return model
        trainer, start = self.cache[key]
        trainer.set_weights(model.get_weights())
        for variable, value in zip(trainer.optimizer.variables, start, strict=True):
            variable.assign(value)
        return trainer


def fit_parallel(members, x, targets, weights, settings, seed=None):
    """Train every member in one Keras model (one trace, one pass over the batches).

    The joint model has one input and one output per member and the sum of the members'
    losses; member i's rows enter with `weights[i]` (bootstrap counts, 0/1 for
    subsamples). One Adam (or the first member's optimizer) over all weights equals one
    optimizer per member, since each member's gradients come from its own loss only.
    With shuffling on (`Model.fit`'s default), member i reads the rows in its own order
    (a fixed permutation from `seed`, then the epoch's shuffle), so its batches are not
    the other members' batches: as when each trains alone, the batch order is a source
    of diversity (sharing one order cost Voting ensembles accuracy). This holds one
    copy of `x` per member.
    """
    first = members[0]
    n = n_rows(x)
    shuffled = settings.get("shuffle", True) is not False
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(n) if shuffled else np.arange(n) for _ in members]
    inputs, outputs, feeds = {}, [], {}  # keyed "member_<i>_<input name>"
    for i, (member, order) in enumerate(zip(members, orders, strict=True)):
        own = {t.name: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=f"member_{i}_{t.name}")
               for t in member.inputs}
        for name, tensor in own.items():
            inputs[f"member_{i}_{name}"] = tensor
            feeds[f"member_{i}_{name}"] = np.asarray(x[name] if isinstance(x, dict) else x)[order]
        outputs.append(member(next(iter(own.values()))) if len(own) == 1 else member(own))
    joint = keras.Model(inputs, outputs)
    optimizer = keras.optimizers.get(
        {"class_name": first.optimizer.__class__.__name__, "config": first.optimizer.get_config()}
    )
    joint.compile(optimizer=optimizer, loss=[m.loss for m in members], jit_compile=False)
    settings = dict(settings)
    settings.setdefault("verbose", 0)
    validation = settings.pop("validation_data", None)
    if validation is not None:
        xv, yv = validation[0], validation[1]
        val_feeds = {}
        for i, member in enumerate(members):
            for t in member.inputs:
                val_feeds[f"member_{i}_{t.name}"] = xv[t.name] if isinstance(xv, dict) else xv
        settings["validation_data"] = (val_feeds, [yv] * len(members))
    joint.fit(feeds, [np.asarray(targets)[order] for order in orders],
              sample_weight=[np.asarray(w, "float32")[order] for w, order in zip(weights, orders, strict=True)],
              **settings)
    return members


def _optimizer_key(optimizer):
    # Keras names every new optimizer uniquely ("adam", "adam_1", ...): the name is no setting
    config = {k: v for k, v in optimizer.get_config().items() if k != "name"}
    return json.dumps(jsonable(config), sort_keys=True) + type(optimizer).__name__


def same_optimizers(members):
    """Whether the members' optimizers have one class and one configuration (names aside)."""
    configs = {_optimizer_key(m.optimizer) for m in members}
    return len(configs) == 1 and all(len(m.inputs) == len(members[0].inputs) for m in members)
