"""The one convention of every ensemble's settings.

Every ensemble takes its training settings as constructor arguments, with scikit-learn's
(and SciKeras's) names, and an argument name means one thing in every class:

- `epochs`: the length of ONE training run of one network, in passes over the data: each
  member's run in voting, bagging and boosting; the one network's whole run (all its
  cycles) in `SnapshotEnsemble`. FGE and SWA split their run into named phases
  (`warmup_epochs`, then `cycle`s or `swa_epochs`) and take no `epochs`.
- `batch_size`: rows per training step, everywhere.
- `fit_params`: any other keyword of Keras `Model.fit` (`callbacks`, `validation_data`,
  `shuffle`, `class_weight`...): one dict for every member, or a list (one per member).
- `learning_rate`: the shrinkage of boosting (scikit-learn's meaning) and nothing else.
  The optimizer is the one the builder compiled; only a method that must replace it
  (the schedules of snapshot, FGE and SWA) does, and then its docstring and an
  `OptimizerReplacedWarning` say so.

The spellings of kfuse 0.2 (`fit_params={"epochs": ...}`, FGE's and SWA's `epochs` and
`learning_rate`, the one-run ensembles' `optimizer`) work for one more release, with a
`DeprecationWarning` that names the new spelling and attributed to the user's line.
Misspelt arguments (constructor, `set_params`, `fit`, `fit_params` keys) are refused
naming the closest valid name.
"""

import dataclasses
import difflib
import functools
import inspect
import os
import sys
import warnings

import keras

from kfuse.ensemble import base

#: the Keras `Model.fit` keywords `fit_params` may hold (x, y are the data of `fit`)
FIT_KEYWORDS = tuple(k for k in inspect.signature(keras.Model.fit).parameters if k not in ("self", "x", "y", "kwargs"))
#: `Model.fit` keywords that are every ensemble's own constructor arguments
OWN = ("epochs", "batch_size")
#: where a setting some classes do not take goes instead
ELSEWHERE = {
    "optimizer": "the members train with the optimizer the builder compiled: compile it there "
                 "(model.compile(optimizer=...))",
}
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class OptimizerReplacedWarning(UserWarning):
    """A method replaced (part of) the optimizer the builder compiled."""


def user_warning(message, category=UserWarning):
    """`warnings.warn` attributed to the first frame outside kfuse: the user's line (where
    Python's default filters show a `DeprecationWarning` raised from a script).

    Example:

    ```python
    import warnings
    from kfuse.ensemble.conventions import user_warning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        user_warning("`epochs` is deprecated; use `warmup_epochs`", DeprecationWarning)
    caught[0].category.__name__  # 'DeprecationWarning'
    ```
    """
    frame, level = sys._getframe(0), 1  # CPython's public frame accessor
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def closest(name, valid):
    """'; did you mean 'x'?' for the valid name closest to `name`, or ''.

    Example:

    ```python
    from kfuse.ensemble.conventions import closest

    closest("n_estimator", ["n_estimators", "epochs"])  # "; did you mean 'n_estimators'?"
    ```
    """
    match = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def _unknown_argument(who, name, valid, where):
    hint = ELSEWHERE.get(name)
    tail = f"; {hint}" if hint else closest(name, valid) + f" (valid: {', '.join(valid)})"
    return TypeError(f"{who}{where} got an unexpected argument {name!r}{tail}")


@dataclasses.dataclass
class FitSettings:
    """The Keras fit settings of every member of one fit: `epochs` and `batch_size`, and
    the `fit_params` entries (member i takes entry i modulo their count)."""

    epochs: int
    batch_size: int
    entries: list

    def member(self, index):
        """The `Model.fit` keywords of member `index` (0.2's per-member epochs kept)."""
        return {"epochs": self.epochs, "batch_size": self.batch_size, **self.entries[index % len(self.entries)]}


class Ensemble(base.BaseEnsemble):
    """Every public ensemble: scikit-learn's `get_params` / `set_params`, constructor
    arguments checked by name, and the fit settings resolved one way."""

    #: 0.2 constructor spellings kept one release: old name -> new name
    renamed = {}

    def __init__(self, estimator, epochs, batch_size, fit_params, random_state, verbose, work_dir):
        """Keep the arguments every ensemble of member networks takes, each unchanged.

        Each subclass's own `__init__` names all its arguments (scikit-learn's `get_params`
        and `clone` read its signature), passes these here and keeps the rest itself.
        """
        self.estimator = estimator
        self.epochs = epochs
        self.batch_size = batch_size
        self.fit_params = fit_params
        self.random_state = random_state
        self.verbose = verbose
        self.work_dir = work_dir

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        names = [p for p in inspect.signature(init).parameters if p != "self"]

        @functools.wraps(init)
        def checked(self, *args, **kw):
            for name in kw:
                if name not in names:
                    raise _unknown_argument(type(self).__name__, name, names, "()")
            init(self, *args, **kw)

        cls.__init__ = checked

    @classmethod
    def _param_names(cls):
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep=False):
        """The constructor arguments, as scikit-learn's `get_params`."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set constructor arguments, as scikit-learn's `set_params`; returns self.

        Example:

        ```python
        import keras
        from kfuse.ensemble import VotingClassifier

        build = lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        VotingClassifier(build).set_params(epochs=5, n_estimators=3).get_params()["epochs"]  # 5
        ```
        """
        names = self._param_names()
        for name, value in params.items():
            if name not in names:
                raise _unknown_argument(self._who(), name, names, ".set_params")
            setattr(self, name, value)
        return self

    def fit(self, x, y=None, **kwargs):
        """Train the members and build `model_`; returns self. Training settings are
        constructor arguments (`epochs`, `batch_size`, `fit_params`), not `fit`'s; y is
        inside x when x is a `tf.data.Dataset` of (x, y) elements."""
        for name in kwargs:
            if name in self._param_names():
                raise TypeError(f"{self._who()}.fit takes x and y only; `{name}` is a constructor argument: "
                                f"{self._who()}(..., {name}=...) or .set_params({name}=...)")
            raise _unknown_argument(self._who(), name, self._param_names(), ".fit")
        return super().fit(x, y)

    # -- renamed arguments --------------------------------------------------------------------
    def _setting(self, new):
        """The value of argument `new`, or of its 0.2 spelling (with a DeprecationWarning;
        refused when both are given and differ)."""
        value = getattr(self, new)
        for old, target in self.renamed.items():
            given = getattr(self, old)
            if target != new or given is None:
                continue
            user_warning(f"{self._who()}: `{old}` is deprecated (it meant {new}) and will be removed in the next "
                         f"release; use `{new}={given!r}`", DeprecationWarning)
            default = inspect.signature(type(self).__init__).parameters[new].default
            if value is not None and value != default and value != given:
                raise ValueError(f"{self._who()}: `{new}`={value!r} and its deprecated spelling `{old}`={given!r} "
                                 f"disagree; give `{new}` alone")
            value = given
        return value

    # -- fit settings -------------------------------------------------------------------------
    def _fit_settings(self, own=OWN):
        """The `FitSettings` of this fit. `fit_params` keys must be `Model.fit` keywords;
        `own` keys (the class's constructor arguments) there are 0.2's spelling: used, with a
        DeprecationWarning naming the argument."""
        who = self._who()
        epochs = base.check_positive_int(self._epochs(), "epochs", who) if "epochs" in own else None
        batch_size = base.check_positive_int(self.batch_size, "batch_size", who)
        entries = self._fit_entries()
        for key in ("epochs", "batch_size", "initial_epoch"):
            values = {entry[key] for entry in entries if key in entry}
            if not values:
                continue
            if key not in own:
                raise ValueError(f"{who}: `fit_params` may not set `{key}`; {self._own_hint(key)}")
            user_warning(f"{who}: fit_params[{key!r}] is deprecated and will be removed in the next release; "
                         f"give `{key}` to {who}(..., {key}=...)", DeprecationWarning)
            mine = epochs if key == "epochs" else batch_size
            default = inspect.signature(type(self).__init__).parameters[key].default
            if mine != default and values != {mine}:
                raise ValueError(f"{who}: `{key}`={mine} and fit_params[{key!r}]={sorted(values)} disagree; "
                                 f"give `{key}` alone")
            if len(values) == 1 and key == "epochs":
                epochs = base.check_positive_int(values.pop(), "epochs", who)
            elif len(values) == 1:
                batch_size = base.check_positive_int(values.pop(), "batch_size", who)
        return FitSettings(epochs, batch_size, entries)

    def _epochs(self):
        return self.epochs

    def _own_hint(self, key):
        if key == "initial_epoch":
            return "a work_dir resumes a run where it stopped"
        return f"set the run's length with {self._who()}'s own arguments ({', '.join(self._run_length())})"

    def _run_length(self):
        return [name for name in self._param_names()
                if (name.endswith("epochs") or name == "cycle") and name not in self.renamed]

    def _fit_entries(self):
        """`fit_params` as a list of dicts (one for every member, or one per member), keys checked."""
        who, fit_params = self._who(), self.fit_params
        if fit_params is None:
            entries = [{}]
        elif isinstance(fit_params, dict):
            entries = [dict(fit_params)]
        elif isinstance(fit_params, (list, tuple)):
            if not fit_params:
                raise ValueError(f"{who}: `fit_params` is an empty list")
            entries = [dict(entry or {}) for entry in fit_params]
        else:
            raise TypeError(f"{who}: `fit_params` must be a dict or a list of dicts; received {type(fit_params).__name__}")
        for entry in entries:
            for key in entry:
                if key not in FIT_KEYWORDS:
                    raise ValueError(f"{who}: fit_params key {key!r} is not a keras Model.fit argument"
                                     f"{closest(key, FIT_KEYWORDS)} (valid: {', '.join(FIT_KEYWORDS)})")
        return entries
