"""Merge parameters as mergekit writes them: a scalar, a list (a gradient interpolated
across layer depth), or a list of ``{"filter": substring, "value": v}`` entries matched
against the weight's path (the first match wins; an entry without ``filter`` is the default).
"""

import numbers

import numpy as np

from kfuse.utils.names import did_you_mean

RANGES = {
    "density": ("in (0, 1]", lambda v: 0 < v <= 1),
    "t": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "weight": ("a finite number", np.isfinite),
    "lambda": ("a finite number", np.isfinite),
    "gamma": ("in [0, 1)", lambda v: 0 <= v < 1),
    "epsilon": ("in [0, 0.5)", lambda v: 0 <= v < 0.5),
    "select_topk": ("in (0, 1]", lambda v: 0 < v <= 1),
    "eps": ("a positive number", lambda v: 0 < v < np.inf),
    "tol": ("a positive number", lambda v: 0 < v < np.inf),
    "scale": ("a finite number", np.isfinite),
}
BOOLEANS = ("normalize", "rescale", "normalize_weights", "nuslerp_row_wise", "nuslerp_flatten",
            "filter_wise")
INTEGERS = ("seed", "max_iter")


def _check_scalar(name, value, where):
    if name in BOOLEANS:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{where}: parameter {name!r} must be true or false, got {value!r}")
        return
    if name in INTEGERS:
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise TypeError(f"{where}: parameter {name!r} must be an integer, got {value!r}")
        if name == "max_iter" and value < 1:
            raise ValueError(f"{where}: parameter 'max_iter' must be at least 1, got {value!r}")
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: parameter {name!r} must be a number, got {value!r}")
    text, ok = RANGES.get(name, ("a number", np.isfinite))
    if not ok(float(value)):
        raise ValueError(f"{where}: parameter {name!r} must be {text}, got {value!r}")


def check_parameter(name, value, where="parameters"):
    """Raise a clear error unless ``value`` is a valid spec for parameter ``name``.

    Example:

    ```python
    from kfuse.merge.params import check_parameter
    check_parameter("density", [0.2, 0.8])
    check_parameter("t", [{"filter": "dense_1", "value": 0.3}, {"value": 0.5}])
    ```
    """
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{where}: parameter {name!r} is an empty list")
        if all(isinstance(v, dict) for v in value):
            for entry in value:
                unknown = set(entry) - {"filter", "value"}
                if unknown or "value" not in entry:
                    raise ValueError(
                        f"{where}: parameter {name!r} entries need keys 'filter' (optional) and "
                        f"'value', got {sorted(entry)}"
                    )
                if isinstance(entry["value"], dict):
                    raise TypeError(f"{where}: parameter {name!r} value must not be a mapping")
                check_parameter(name, entry["value"], where)
            return
        for v in value:
            _check_scalar(name, v, where)
        return
    _check_scalar(name, value, where)


def check_names(given, method, where="parameters"):
    """Reject parameter names ``method`` does not take, suggesting the closest.

    Example:

    ```python
    from kfuse.merge.methods import get_method
    from kfuse.merge.params import check_names
    check_names({"weight": 1.0}, get_method("linear"))
    ```
    """
    valid = method.parameter_names
    for name in given:
        if name not in valid:
            hint = did_you_mean(name, valid)
            raise ValueError(
                f"{where}: method {method.name!r} has no parameter {name!r}; it takes "
                f"{valid}.{hint}"
            )


def resolve(value, path, depth):
    """The value of a parameter spec for the weight at ``path`` and ``depth`` in [0, 1].

    Example:

    ```python
    from kfuse.merge.params import resolve
    print(resolve([0.0, 1.0], "dense_1/kernel", 0.25))  # 0.25
    print(resolve([{"filter": "dense_1", "value": 0.9}, {"value": 0.1}], "dense_1/bias", 0.0))
    ```
    """
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, dict) for v in value):
            for entry in value:
                if "filter" not in entry or entry["filter"] in path:
                    return resolve(entry["value"], path, depth)
            return None
        if len(value) == 1:
            return value[0]
        return float(np.interp(depth, np.linspace(0, 1, len(value)), value))
    return value
