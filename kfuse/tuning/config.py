"""The YAML file `kfuse tune` reads: branches, data, search space, tuner, budget, export.

```yaml
branches:                       # .keras files, frozen or fine-tuned per the space
  - {path: saved_models/mnist1d_cnn.keras, name: cnn, output: probabilities}
  - {path: saved_models/mnist1d_gru.keras, name: gru, output: probabilities}
data: mnist1d                   # or {source: data.npz, rows: 1000}; arrays x, y (x_val, y_val)
head: 10                        # classes (default: from the labels)
space: {fusions: [concat, weighted_average, gated], meta_depth: [0, 1], finetune: 0,
        learning_rate: {min: 1.0e-4, max: 1.0e-2, sampling: log}}
tuner: {type: bayesian, objective: val_accuracy, max_trials: 10, seed: 0}
fit: {epochs: 5, batch_size: 64, validation_split: 0.2}
export: {dir: saved_models, name: mnist1d_tuned}
```

Relative paths are read from the current directory. Every mapping is checked: unknown
keys are refused by name, and missing branch files are reported before anything runs.
"""

import difflib
import os

from kfuse.tuning.space import Range
from kfuse.utils import yaml_marks

SECTIONS = {
    "branches": None,
    "data": None,
    "head": None,
    "space": None,
    "tuner": None,
    "fit": None,
    "export": None,
}
BRANCH_KEYS = ("path", "name", "inputs", "output", "tap")
DATA_KEYS = ("source", "rows", "x", "y", "x_val", "y_val")
SPACE_KEYS = (
    "fusions", "meta_depth", "meta_width", "meta_dropout", "include", "required", "finetune",
    "learning_rate", "modality_dropout", "optimizer", "cache",
)  # fmt: skip
RANGE_KEYS = ("min", "max", "step", "sampling")
TUNER_KEYS = (
    "type", "objective", "max_trials", "max_epochs", "seed", "directory", "project_name",
    "overwrite", "executions_per_trial",
)  # fmt: skip
FIT_KEYS = ("epochs", "batch_size", "validation_split", "verbose", "shuffle")
EXPORT_KEYS = ("dir", "name", "version", "overwrite")
TUNER_DEFAULTS = {
    "type": "random",
    "objective": "val_accuracy",
    "max_trials": 10,
    "directory": "tune_runs",
    "project_name": "kfuse_tune",
    "overwrite": True,
}
FIT_DEFAULTS = {"epochs": 3, "validation_split": 0.2, "verbose": 0}
EXPORT_DEFAULTS = {"dir": "saved_models", "name": "kfuse_tuned"}


def check_keys(mapping, valid, where):
    if not isinstance(mapping, dict):
        raise ValueError(f"{where} must be a mapping; received {type(mapping).__name__} {mapping!r}")
    unknown = [k for k in mapping if k not in valid]
    if unknown:
        place = yaml_marks.at(mapping, unknown[0], value=False)
        hints = {k: difflib.get_close_matches(str(k), list(valid), n=1) for k in unknown}
        hint = "; ".join(f"{k!r} -> did you mean {h[0]!r}?" for k, h in hints.items() if h)
        raise ValueError(
            f"{where}: unknown key(s) {unknown}{' at ' + place if place else ''}. Valid keys: {list(valid)}" + (f" ({hint})" if hint else "")
        )
    return mapping


def load_config(path):
    """Read and check a `kfuse tune` YAML file; return it as a dict with defaults filled in."""
    if not os.path.isfile(path):
        raise ValueError(f"No such config file {path!r}")
    raw = yaml_marks.load(path, example="examples/tune_mnist1d.yaml")
    return check_config(raw, where=path)


def check_config(raw, where="config"):
    check_keys(raw, SECTIONS, where)
    for key in ("branches", "data"):
        if key not in raw:
            raise ValueError(f"{where}: the required key {key!r} is missing")
    branches = raw["branches"]
    if not isinstance(branches, list) or not branches:
        raise ValueError(f"{where}: `branches` must be a non-empty list of {{path: file.keras, ...}}")
    checked = []
    for i, spec in enumerate(branches):
        spec = {"path": spec} if isinstance(spec, str) else spec
        check_keys(spec, BRANCH_KEYS, f"{where}: branches[{i}]")
        if "path" not in spec:
            raise ValueError(f"{where}: branches[{i}] needs a `path` to a .keras file")
        if not os.path.isfile(spec["path"]):
            raise ValueError(
                f"{where}: branches[{i}] path {spec['path']!r} does not exist "
                f"(looked at {os.path.abspath(spec['path'])})"
            )
        name = spec.get("name") or os.path.splitext(os.path.basename(spec["path"]))[0]
        checked.append({**spec, "name": name})
    data = raw["data"]
    data = {"source": data} if isinstance(data, str) else check_keys(data, DATA_KEYS, f"{where}: data")
    source = data.get("source")
    if source != "mnist1d" and not (isinstance(source, str) and source.endswith(".npz") and os.path.isfile(source)):
        raise ValueError(f"{where}: data source {source!r} must be 'mnist1d' or an existing .npz file")
    space = check_keys(raw.get("space") or {}, SPACE_KEYS, f"{where}: space")
    space = {k: _dimension(v, f"{where}: space.{k}") for k, v in space.items()}
    tuner = {**TUNER_DEFAULTS, **check_keys(raw.get("tuner") or {}, TUNER_KEYS, f"{where}: tuner")}
    from kfuse.tuning.tuners import TUNERS

    if tuner["type"] not in TUNERS:
        raise ValueError(f"{where}: tuner.type {tuner['type']!r} is not one of {sorted(TUNERS)}")
    fit = {**FIT_DEFAULTS, **check_keys(raw.get("fit") or {}, FIT_KEYS, f"{where}: fit")}
    export = {**EXPORT_DEFAULTS, **check_keys(raw.get("export") or {}, EXPORT_KEYS, f"{where}: export")}
    head = raw.get("head")
    check_values(where, data, space, tuner, fit, export, head, raw=raw)
    return {"branches": checked, "data": data, "head": head, "space": space, "tuner": tuner, "fit": fit, "export": export}


#: section -> key -> (kind, description): "int" (>= 1), "int0" (>= 0), "fraction" ([0, 1)),
#: "bool", "str"
VALUE_TYPES = {
    "data": {"rows": "int", "source": "str", "x": "str", "y": "str", "x_val": "str", "y_val": "str"},
    "tuner": {"max_trials": "int", "max_epochs": "int", "executions_per_trial": "int", "seed": "int0",
              "overwrite": "bool", "objective": "str", "directory": "str", "project_name": "str"},
    "fit": {"epochs": "int", "batch_size": "int", "validation_split": "fraction", "verbose": "int0",
            "shuffle": "bool"},
    "export": {"dir": "str", "name": "str", "version": "int", "overwrite": "bool"},
}
_KIND_TEXT = {"int": "a whole number >= 1", "int0": "a whole number >= 0",
              "fraction": "a number in [0, 1)", "bool": "true or false", "str": "a string"}


def _value_ok(kind, value):
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind in ("int", "int0"):
        return isinstance(value, int) and not isinstance(value, bool) and value >= (1 if kind == "int" else 0)
    if kind == "fraction":
        return number and 0 <= value < 1
    if kind == "bool":
        return isinstance(value, bool)
    return isinstance(value, str) and value != ""


def check_values(where, data, space, tuner, fit, export, head, raw=None):
    """Refuse values of the wrong type (`epochs: one`, `rows: all`) by section and key."""
    sections = {"data": data, "tuner": tuner, "fit": fit, "export": export}
    for section, kinds in VALUE_TYPES.items():
        for key, kind in kinds.items():
            if key not in sections[section]:
                continue  # absent: its default (or the tuner's) applies
            value = sections[section][key]
            if value is None and key in ("version", "seed", "rows"):
                continue  # null: the next version / no seed / every row
            if not _value_ok(kind, value):
                place = yaml_marks.at((raw or {}).get(section), key)
                raise ValueError(
                    f"{where}{', ' + place if place else ''}: {section}.{key} must be {_KIND_TEXT[kind]}; received {value!r}"
                    + (f" ({type(value).__name__})" if value is not None else "")
                )
    if head is not None and (isinstance(head, bool) or not isinstance(head, int) or head < 2):
        raise ValueError(
            f"{where}: head must be the number of classes, a whole number >= 2 (or leave it out to "
            f"count the classes in the labels); received {head!r}"
        )
    from kfuse.layers import fusion_names

    fusions = space.get("fusions")
    for name in [] if fusions is None else fusions if isinstance(fusions, list) else [fusions]:
        if name not in fusion_names():
            close = difflib.get_close_matches(str(name), fusion_names(), n=1)
            raise ValueError(
                f"{where}: space.fusions names the unknown fusion {name!r}"
                + (f" (did you mean {close[0]!r}?)" if close else "")
                + f"; valid fusions: {fusion_names()}"
            )


def _dimension(value, where):
    """A YAML dimension: a scalar, a list, or {min, max, step, sampling} -> Range."""
    if isinstance(value, dict):
        check_keys(value, RANGE_KEYS, where)
        if "min" not in value or "max" not in value:
            raise ValueError(f"{where}: a range needs `min` and `max`; received {value}")
        try:
            return Range(value["min"], value["max"], step=value.get("step"), sampling=value.get("sampling", "linear"))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: {error}") from None
    return value
