"""What every ensemble shares: members from a spec, their fit loop, seeds, progress, resume.

A member spec is a builder callable (no arguments, returns a `keras.Model`), a
`keras.Model` (cloned with fresh weights for each member) or a list of such specs (a
heterogeneous ensemble: member i uses spec i modulo the list length). Members the spec
leaves uncompiled are compiled with Adam and the task's loss (sparse cross-entropy, from
logits when the model ends linear; MSE for regression). kfuse compiles members with
`jit_compile=False`: XLA's compile time (seconds per member on CPU) outweighs its gain on
the small networks ensembles hold.

`work_dir` is a `kfuse.utils.run_store.RunStore` (the Stacker's store): one `.keras` file and
one `.npz` state file per finished member (`member_<i>`), plus `run.json`, the
configuration fingerprint (each builder identified by the network it builds,
`kfuse.utils.fingerprints`): a second `fit` with the same configuration and data resumes where
the first stopped; another configuration is refused, naming each differing setting. One
fit writes a work_dir at a time (a lock); a second gets `WorkDirInUseError`.
"""

import contextlib
import json
import random

import keras
import numpy as np

from kfuse.branches.outputs import default_loss, ends_linear
from kfuse.branches.raw_inputs import holds_raw_strings, tokenized
from kfuse.inputs.xy import checked_xy
from kfuse.utils.fingerprints import compiled_hash, data_digest
from kfuse.utils.jsonable import jsonable as _jsonable
from kfuse.utils.optimizers import copy_optimizer
from kfuse.utils.outputs import to_probabilities
from kfuse.utils.progress import progress_bar
from kfuse.utils.run_store import RunStore

try:
    from sklearn.exceptions import NotFittedError
except ImportError:  # pragma: no cover - scikit-learn is a dependency; its class is the same kind
    class NotFittedError(ValueError, AttributeError):
        """An estimator used before `fit`."""

#: settings that do not change what a fit trains: never part of the fingerprint
RESULT_FREE = ("verbose", "work_dir")


# -- settings -------------------------------------------------------------------------------
def check_positive_int(value, name, who):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{who}: `{name}` must be an integer >= 1; received {value!r}")
    return int(value)


def check_positive_number(value, name, who):
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if not ok or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{who}: `{name}` must be a finite number > 0; received {value!r}")
    return value


# -- labels: the one encoding of every ensemble --------------------------------------------
def _integral(y):
    return y.dtype.kind == "f" and y.size > 0 and bool(np.all(np.isfinite(y))) and bool(np.all(y == np.round(y)))


def is_classification_labels(y, width=None):
    """Whether 1-D `y` holds class labels: integers, booleans or strings; or floats with
    whole values (0.0, 1.0, 2.0, as pandas gives them) when the network has `width` > 1
    outputs and y has at most `width` distinct values."""
    y = np.asarray(y)
    if y.ndim != 1:
        return False
    if y.dtype.kind in "iubUSO":
        return True
    return width is not None and width > 1 and _integral(y) and len(np.unique(y)) <= width


def output_width(model):
    """The last axis of a network's (first) output."""
    return int(model.outputs[0].shape[-1])


def encode_labels(y, who, width=None):
    """(classes_, class ids) of 1-D labels; `classes_` keeps the user's dtype, so `predict`
    returns labels as given. `width`: the members' output count, which must equal the
    number of classes (one probability per class)."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{who}: class labels must be one per row (a 1-D array); received shape {y.shape}")
    if y.dtype.kind == "f" and not _integral(y):
        raise ValueError(f"{who}: y holds continuous values (e.g. {y[y != np.round(y)][:3].tolist()}), not class "
                         "labels; give integer, string or whole-number labels, or use a regressor")
    classes = np.unique(y)
    check_classes(width, classes, who)
    return classes, np.searchsorted(classes, y)


def check_classes(width, classes, who, member="the members"):
    """A network with `width` outputs must give one probability per class of `classes`."""
    if width is None or width == 1 or width == len(classes):
        return
    shown = classes.tolist() if len(classes) <= 10 else classes[:10].tolist() + ["..."]
    raise ValueError(
        f"{who}: {member} output {width} values per row but y has {len(classes)} classes {shown}; "
        f"{'a probability for a class that does not exist' if width > len(classes) else 'labels beyond the outputs'}. "
        f"Build the network with {len(classes)} outputs, or check that y holds every class."
    )


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


def new_member(spec, seed, task, who, index, classes=None):
    """A fresh, compiled member network built from `spec` under `seed` (its outputs checked
    against `classes` when given)."""
    model = build_member(spec, seed, who, index)
    if classes is not None:
        check_classes(output_width(model), classes, who, f"member_{index}")
    return compile_member(model, task)


def build_member(spec, seed, who, index):
    """The network of `spec` under `seed` (compiled only where the spec carries its settings)."""
    keras.utils.set_random_seed(int(seed))
    if isinstance(spec, keras.Model):
        model = keras.models.clone_model(spec)
        if getattr(spec, "optimizer", None) is not None and getattr(spec, "loss", None) is not None:
            model.compile(optimizer=copy_optimizer(spec.optimizer), loss=spec.loss, jit_compile=False)
    else:
        model = spec()
        if not isinstance(model, keras.Model):
            raise TypeError(
                f"{who}: the builder for member_{index} returned {type(model).__name__}, not a keras.Model"
            )
    return model


def compile_member(model, task):
    """Compile with Adam and the task's loss unless the member brought its own settings."""
    if getattr(model, "optimizer", None) is None or getattr(model, "loss", None) is None:
        model.compile(optimizer="adam", loss=default_loss(model, None if task == "regression" else "softmax"), jit_compile=False)
    return model




def probabilities(model, x, batch_size=256, out=None):
    """Class probabilities of a member (softmax applied when it ends linear); `out`: its
    outputs on `x` when already computed."""
    if out is None:
        out = model.predict(x, batch_size=batch_size, verbose=0)
    out = np.asarray(out, dtype="float64")
    if ends_linear(model):
        return to_probabilities(out, "sigmoid" if out.shape[-1] == 1 else "softmax")
    return out


# -- resume ---------------------------------------------------------------------------------
def spec_identity(spec, who="kfuse"):
    """A member spec by the network it builds (structure and compile settings), as the
    Stacker identifies a base: a builder changed from `Dense(4)` to `Dense(16)` is seen.
    The build leaves Python's and numpy's random states as they were."""
    if isinstance(spec, keras.Model):
        return "model:" + compiled_hash(spec)
    return "builder:" + compiled_hash(built_aside(spec, who))


def built_aside(spec, who="kfuse"):
    """The network of member spec `spec` (itself when a `keras.Model`), built leaving
    Python's and numpy's random states as they were (each member is seeded on its own)."""
    if isinstance(spec, keras.Model):
        return spec
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        model = spec()
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    if not isinstance(model, keras.Model):
        raise TypeError(f"{who}: the member builder returned {type(model).__name__}, not a keras.Model")
    return model


def _callable_name(value):
    return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', type(value).__name__)}"


def jsonable(value):
    """`kfuse.utils.jsonable.jsonable`, callables by their qualified name."""
    return _jsonable(value, leaf=_callable_name)


def member(index):
    """The run-store entry name of member `index`."""
    return f"member_{index}"


def load_member(store, index):
    """(model, state arrays) of a finished member in `store`; a damaged file names its path."""
    return store.load(member(index), what=f"trains member_{index} again", compile=True)


class BaseEnsemble:
    """Shared fit machinery; subclasses implement `_fit(x, y, claims)` (x and y checked)."""

    task = "classification"

    def _who(self):
        return type(self).__name__

    def fit(self, x, y=None):
        """Train the members and build `model_`; returns self. The work_dir (if any) is
        held for this fit alone and released when it ends, finished or not. Raw strings
        of a member's KerasHub Task branches (`<branch>_text`) are tokenized once, here,
        then x and y are checked once (`kfuse.inputs.checked_xy`): `_fit(x, y, claims)`
        receives numpy data, one row of y per row of x, every number finite."""
        self.raw_source_ = None  # this fit's member specs, read again
        x = self._tokenized(x)
        x, y = checked_xy(x, y, f"{self._who()}.fit")
        with contextlib.ExitStack() as claims:
            return self._fit(x, y, claims)

    def _tokenized(self, x):
        """`x` with the raw strings of the members' KerasHub Task branches tokenized
        (`kfuse.branches.raw_inputs.tokenized`, read from `raw_source_`); other data as it is."""
        if not holds_raw_strings(x):
            return x
        if getattr(self, "raw_source_", None) is None:  # the first member spec's network
            self.raw_source_ = built_aside(spec_list(self.estimator, self._who())[0], self._who())
        return tokenized(self.raw_source_, x, self._who())

    def _fingerprint(self, x, y, *extra):
        """What the members depend on: every setting but `RESULT_FREE`, the member specs by
        the networks they build, and the data's content."""
        params = {k: jsonable(v) for k, v in sorted(self.get_params().items()) if k not in RESULT_FREE}
        if "estimator" in params:
            specs = spec_list(self.estimator, self._who())
            params["estimator"] = [spec_identity(s, self._who()) for s in specs]
        arrays = dict(x) if isinstance(x, dict) else {"x": x}
        arrays.update({f"extra_{i}": np.asarray(e) for i, e in enumerate(extra) if not isinstance(e, dict)})
        for i, e in enumerate(extra):
            if isinstance(e, dict):
                arrays.update({f"extra_{i}.{k}": v for k, v in e.items()})
        return {"format": "kfuse.ensemble/2", "class": self._who(), "params": params,
                "data": data_digest({k: np.asarray(v) for k, v in arrays.items()}, y)}

    def _open_store(self, claims, x, y, *extra):
        """The run store of `work_dir` (a disabled one without), held until `claims` closes."""
        fingerprint = None if self.work_dir is None else self._fingerprint(x, y, *extra)
        return claims.enter_context(RunStore(self.work_dir, fingerprint, self._who()))

    def _progress(self, total):
        return progress_bar(total, 1 if self.verbose else 0, unit_name="member")

    def _seed(self, index):
        base = 0 if self.random_state is None else int(self.random_state)
        return base * 1000 + index

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise NotFittedError(f"{self._who()} is not fitted yet: call .fit(x, y) first")

    def predict_proba(self, x, batch_size=256):
        """Class probabilities (classification) of the fused graph."""
        self._check_fitted()
        return np.asarray(self.model_.predict(self._tokenized(x), batch_size=batch_size, verbose=0))

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


def _optimizer_key(optimizer):
    # Keras names every new optimizer uniquely ("adam", "adam_1", ...): the name is no setting
    config = {k: v for k, v in optimizer.get_config().items() if k != "name"}
    return json.dumps(jsonable(config), sort_keys=True) + type(optimizer).__name__


def same_optimizers(members):
    """Whether the members' optimizers have one class and one configuration (names aside)."""
    configs = {_optimizer_key(m.optimizer) for m in members}
    return len(configs) == 1 and all(len(m.inputs) == len(members[0].inputs) for m in members)
