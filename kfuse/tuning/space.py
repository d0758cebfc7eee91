"""Search-space dimensions: how a constructor argument becomes a KerasTuner hyperparameter.

Every dimension of `FusionHyperModel` takes one of

- a single value: the dimension is fixed (`hp.Fixed`);
- a list or tuple of values: a choice among them (`hp.Choice`; one value is fixed);
- a `Range(min_value, max_value, ...)`: a numeric interval (`hp.Int` / `hp.Float`).
"""

import keras


class Range:
    """A numeric interval for one search dimension.

    Args:
        min_value (int | float): the lower bound (ints give `hp.Int`, floats `hp.Float`).
        max_value (int | float): the upper bound (of the same kind as `min_value`).
        step (int | float | None): optional step between values.
        sampling (str): "linear", "log" or "reverse_log".

    Example:

    ```python
    import kfuse
    lr = kfuse.tuning.Range(1e-4, 1e-2, sampling="log")
    ```
    """

    def __init__(self, min_value, max_value, step=None, sampling="linear"):
        for label, value in (("min_value", min_value), ("max_value", max_value)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"Range: `{label}` must be a number; received {value!r}")
        if min_value > max_value:
            raise ValueError(f"Range: min_value {min_value} exceeds max_value {max_value}")
        if sampling not in ("linear", "log", "reverse_log"):
            raise ValueError(f"Range: `sampling` must be linear, log or reverse_log; received {sampling!r}")
        if sampling != "linear" and min_value <= 0:
            raise ValueError(f"Range: {sampling} sampling needs min_value > 0; received {min_value}")
        self.min_value = min_value
        self.max_value = max_value
        self.step = step
        self.sampling = sampling

    @property
    def is_int(self):
        return all(isinstance(v, int) for v in (self.min_value, self.max_value, self.step or 1))

    def contains(self, value):
        return self.min_value <= value <= self.max_value

    def __repr__(self):
        return f"Range({self.min_value!r}, {self.max_value!r}, step={self.step!r}, sampling={self.sampling!r})"


def as_choices(spec, dimension):
    """The values of a fixed or choice spec as a list (a Range is returned as is)."""
    if isinstance(spec, Range):
        return spec
    if isinstance(spec, (list, tuple)):
        values = list(dict.fromkeys(spec))
        if not values:
            raise ValueError(
                f"The search space is empty: `{dimension}` was given no values ({spec!r}); "
                "give at least one value"
            )
        return values
    return [spec]


def declare(hp, name, spec, dimension=None, default=None):
    """Declare `name` in `hp` from a fixed value, a list of choices or a `Range`; return its value.

    `default` (a choice's value the tuner's first trial takes; ignored when not among the
    choices) is the first choice when None.
    """
    dimension = dimension or name
    if isinstance(spec, Range):
        if spec.is_int:
            return hp.Int(name, spec.min_value, spec.max_value, step=spec.step, sampling=spec.sampling)
        return hp.Float(name, float(spec.min_value), float(spec.max_value), step=spec.step, sampling=spec.sampling)
    values = as_choices(spec, dimension)
    if len(values) == 1:
        return hp.Fixed(name, values[0])
    return hp.Choice(name, values, default=default if default in values else None)


def check_numbers(spec, dimension, low, high, integer=False):
    """Raise ValueError unless every value of `spec` lies in [low, high] (and is an int)."""
    values = [spec.min_value, spec.max_value] if isinstance(spec, Range) else as_choices(spec, dimension)
    for value in values:
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or not low <= value <= high:
            kind = "int" if integer else "number"
            raise ValueError(
                f"`{dimension}` takes {kind}s in [{low}, {high}]; received {value!r} (in {spec!r})"
            )


def fusion_accepts(name, shapes, branch_names):
    """Whether fusion `name` builds on branch outputs of `shapes` (each without the batch axis)."""
    from kfuse.layers import get_fusion

    try:
        layer = get_fusion(name)
        layer.branch_names = list(branch_names)
        layer([keras.KerasTensor((None, *shape)) for shape in shapes])
    except (ValueError, TypeError):
        return False
    return True
