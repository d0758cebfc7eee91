"""``merge(models, method, base=None, **parameters)``: one network from many, weight by weight."""

import contextlib
import warnings
import zipfile

import keras
import numpy as np

from .checks import weight_specs
from .methods import get_method
from .params import check_names, check_parameter, resolve
from .sources import (
    FileSource,
    ModelSource,
    build_from_file,
    load_keras_file,
    reference_layout,
)

DTYPES = ("float16", "float32", "float64")


def _as_list(models):
    if isinstance(models, (keras.Model, str)) or not hasattr(models, "__iter__"):
        raise TypeError(
            f"models must be a list of keras.Model or .keras paths, got {type(models).__name__}"
        )
    models = list(models)
    for i, m in enumerate(models):
        if not isinstance(m, (keras.Model, str)) and not hasattr(m, "__fspath__"):
            raise TypeError(
                f"models[{i}] must be a keras.Model or a .keras path, got {type(m).__name__}"
            )
    return models


LOOKUP_CLASSES = ("StringLookup", "IntegerLookup", "TextVectorization")


def _skeleton(first, name):
    """A new model of ``first``'s architecture; every weight is then written by the merge,
    so a file's weights are not loaded here (its config is rebuilt with safe_mode=True).

    Adapted vocabularies are lookup tables, not weights, and neither ``clone_model`` nor a
    config carries them: they are copied from ``first`` (a model), or ``first`` (a file with
    a lookup layer) is loaded whole, assets included."""
    if isinstance(first, keras.Model):
        skeleton = keras.models.clone_model(first)
        _copy_vocabularies(first, skeleton)
        return skeleton, None
    path = str(first)
    with zipfile.ZipFile(path) if zipfile.is_zipfile(path) else contextlib.nullcontext() as z:
        has_lookup = z is not None and any(
            f'"class_name": "{c}"' in z.read("config.json").decode() for c in LOOKUP_CLASSES)
    if has_lookup:
        return load_keras_file(path, name), path
    return build_from_file(path, name), path


def _walk(layer):
    yield layer
    if isinstance(layer, keras.Model):
        for sub in layer.layers:
            yield from _walk(sub)


def _copy_vocabularies(source, target):
    for a, b in zip(_walk(source), _walk(target), strict=True):
        if type(a).__name__ in LOOKUP_CLASSES and hasattr(a, "get_vocabulary"):
            kwargs = {}
            if getattr(a, "output_mode", None) == "tf_idf" and getattr(a, "idf_weights", None) is not None:
                kwargs["idf_weights"] = keras.ops.convert_to_numpy(a.idf_weights)
            b.set_vocabulary(a.get_vocabulary(), **kwargs)


def _source(item, name, layout):
    if isinstance(item, keras.Model):
        return ModelSource(item, name)
    return FileSource(str(item), name, layout)


def _validate(method, models, base, model_parameters, parameters):
    n = len(models)
    if method.name == "slerp":
        if base is not None:
            models = [base] + models
            base = None
        if len(models) != 2:
            raise ValueError(
                f"slerp interpolates exactly two models (base + one model, or two models), "
                f"got {len(models)}; use 'linear' for more."
            )
        if parameters.get("t") is None:
            raise ValueError("slerp needs parameter t in [0, 1] (t=0 gives the first model)")
    elif n < method.min_models:
        raise ValueError(
            f"{method.name} needs at least {method.min_models} model(s), got {n}"
            + (" (plus base)." if method.needs_base else ".")
        )
    elif method.max_models is not None and n > method.max_models:
        raise ValueError(
            f"{method.name} takes at most {method.max_models} model(s)"
            + (" plus base" if method.needs_base else "") + f", got {n}."
        )
    if base is not None and method.name != "slerp" and not (method.needs_base
                                                            or method.takes_base):
        raise ValueError(
            f"{method.name} takes no base= (it merges the models alone, as in mergekit); "
            "put that model in models, or use a task-vector method (task_arithmetic, ties...)."
        )
    if method.needs_base and base is None:
        raise ValueError(
            f"{method.name} needs base= (the model the others were fine-tuned from): it "
            "merges task vectors theta_i - theta_base."
        )
    check_names(parameters, method)
    for p, default in method.global_parameters.items():
        if default is None and parameters.get(p) is None:
            raise ValueError(f"{method.name} needs parameter {p} (mergekit has no default)")
    for k, v in parameters.items():
        check_parameter(k, v)
    if model_parameters is not None:
        if len(model_parameters) != len(models):
            raise ValueError(
                f"model_parameters has {len(model_parameters)} entries for {len(models)} models"
            )
        for i, params in enumerate(model_parameters):
            where = f"model_parameters[{i}]"
            unknown = [k for k in params if k not in method.model_parameters]
            if unknown:
                raise ValueError(
                    f"{where}: {method.name} takes per-model parameters "
                    f"{sorted(method.model_parameters)}, got {unknown[0]!r}"
                )
            for k, v in params.items():
                check_parameter(k, v, where)
    return models, base


def prepare(models, method, base, model_parameters, dtype, parameters):
    """Checked arguments of a merge: ``(method, models, base, model_parameters, parameters)``."""
    method = get_method(method)
    models = _as_list(models)
    parameters = dict(parameters)
    if "lambda_" in parameters:
        parameters["lambda"] = parameters.pop("lambda_")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    models, base = _validate(method, models, base, model_parameters, parameters)
    model_parameters = model_parameters or [{} for _ in models]
    return method, models, base, model_parameters, parameters


def first_model(models, base):
    """The model whose architecture (and non-float weights) the merge keeps, and its name."""
    return (base, "base") if base is not None else (models[0], "models[0]")


@contextlib.contextmanager
def open_sources(models, base, specs, layout, first_name):
    """Open every input (checked against ``specs``) and close them all afterwards."""
    sources, base_source = [], None
    try:
        if base is not None:
            base_source = _source(base, "base", layout)
            base_source.check(specs, first_name)
        for i, m in enumerate(models):
            sources.append(_source(m, f"models[{i}]", layout))
            sources[-1].check(specs, first_name)
        yield sources, base_source
    finally:
        for src in sources + ([base_source] if base_source is not None else []):
            src.close()


def merge(models, method, base=None, *, model_parameters=None, dtype="float32",
          repair_data=None, batch_size=256, data=None, **parameters):
    """Merge models of one architecture into a new ``keras.Model`` of that architecture.

    Args:
        models (list[keras.Model | str]): ``keras.Model``s and/or ``.keras`` paths (loaded with
            ``safe_mode=True``; files are read one tensor at a time).
        method (str): a name in ``kfuse.merge.METHODS`` (mergekit's names, parameters and
            defaults): ``linear``, ``slerp``, ``nuslerp``, ``multislerp``, ``karcher``,
            ``task_arithmetic``, ``ties``, ``dare_linear``, ``dare_ties``, ``breadcrumbs``,
            ``breadcrumbs_ties``, ``della``, ``della_linear``, ``sce``, ``model_stock``,
            ``nearswap``, ``arcee_fusion`` or ``passthrough``, or a
            data-aware method: ``fisher``, ``regmean``, ``adamerging`` (needs ``base``) or
            ``zipit`` (MLPs only), see ``kfuse.merge.data_aware``.
        base (keras.Model | str | None): the model the others were fine-tuned from (task-vector
            methods; slerp's t=0).
        model_parameters (list[dict] | None): one dict per model (``weight``, ``density``),
            overriding ``parameters``.
        dtype (str): the dtype the arithmetic runs in; the output keeps the models' dtypes.
        repair_data (ArrayLike | tf.data.Dataset | Iterable | None): inputs (array, or tf.data /
            generator of batches) to recompute BatchNorm statistics with ``repair_batchnorm``;
            without it a BatchNorm merge warns.
        data (ArrayLike | tuple | tf.data.Dataset | list | None): the inputs a data-aware method
            reads: one array / ``(x, y)`` / ``tf.data`` per model (each model's own task, in the
            models' order), or one set for all.
        **parameters (Any): global parameters (``t``, ``lambda`` (or ``lambda_``), ``normalize``,
            ``seed``) and defaults of per-model ones. A value may be a list (a gradient across
            layer depth, as in mergekit: ``weight=[0.2, 0.8]`` is NOT one weight per model;
            use ``model_parameters`` for that) or a list of ``{"filter": "name", "value": v}``.

    Non-float weights and BatchNorm moving statistics are copied from the base (or the first
    model), never averaged. DARE and DELLA draw their masks from
    ``numpy.random.default_rng([seed, i])`` for weight ``i``.

    Example:

    ```python
    import keras
    from kfuse.merge import merge
    def net():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    a, b = net(), net()
    merged = merge([a, b], "linear", model_parameters=[{"weight": 0.3}, {"weight": 0.7}])
    print(merged.count_params())
    ```
    """
    from .data_aware import DATA_METHODS, check_method_name, merge_with_data

    check_method_name(method)
    if isinstance(method, str) and method in DATA_METHODS:
        return merge_with_data(_as_list(models), method, base, data, model_parameters,
                               parameters)
    if data is not None:
        raise ValueError(f"merge method {method!r} reads weights only; data= is for the "
                         f"data-aware methods {sorted(DATA_METHODS)} (repair_data= recomputes "
                         "BatchNorm statistics)")
    method, models, base, model_parameters, parameters = prepare(
        models, method, base, model_parameters, dtype, parameters)
    first, first_name = first_model(models, base)
    skeleton, path = _skeleton(first, first_name)
    specs = weight_specs(skeleton)
    needs_layout = any(not isinstance(m, keras.Model) for m in models + [base] if m is not None)
    layout = reference_layout(skeleton, path) if needs_layout else None
    with open_sources(models, base, specs, layout, first_name) as (sources, base_source):
        _merge_into(skeleton, specs, method, sources, base_source, model_parameters,
                    parameters, np.dtype(dtype))
    if any(s.kind == "bn_stat" for s in specs):
        if repair_data is not None:
            from .batchnorm import repair_batchnorm

            repair_batchnorm(skeleton, repair_data, batch_size=batch_size)
        else:
            warn_unrepaired(stacklevel=3)
    return skeleton


def warn_unrepaired(stacklevel=2):
    warnings.warn(
        "The merged model has BatchNormalization layers; their moving statistics were "
        "copied from one input, not recomputed. Pass repair_data= (training inputs) "
        "or call kfuse.merge.repair_batchnorm(model, x).",
        stacklevel=stacklevel,
    )


def _merge_into(skeleton, specs, method, sources, base_source, model_parameters, parameters,
                dtype):
    variables = skeleton.weights
    for spec in specs:
        merged = merged_tensor(spec, method, sources, base_source, model_parameters, parameters,
                               dtype)
        if merged is not None:
            variables[spec.index].assign(merged)


def _check_finite(array, source, spec):
    """Refuse a NaN / inf in an input's float weight: a merge would carry it into every
    merged entry it touches."""
    if array is None or not np.issubdtype(np.asarray(array).dtype, np.floating):
        return
    bad = ~np.isfinite(array)
    if bad.any():
        path = getattr(source, "path", None)
        name = f"{source.name} ({path!r})" if path else source.name
        raise ValueError(
            f"{name} has {int(bad.sum())} NaN/inf value(s) in weight {spec.path!r} (first at "
            f"index {tuple(int(j) for j in np.argwhere(bad)[0])}): a merge would spread them; "
            "fix or drop that model"
        )


def merged_tensor(spec, method, sources, base_source, model_parameters, parameters, dtype):
    """The merged value of weight ``spec`` (in the weight's own dtype), read one tensor per
    source; non-float weights and BatchNorm statistics come from the base (or the first
    model). ``None`` when no source holds the weight (a file without it: the skeleton's
    value stays)."""
    i = spec.index
    seed = parameters.get("seed", method.global_parameters.get("seed", 0))
    arrays = [src.read(i) for src in sources]
    base = base_source.read(i) if base_source is not None else None
    for src, array in zip(sources + [base_source], arrays + [base], strict=True):
        _check_finite(array, src, spec)
    if spec.kind != "float" or any(a is None for a in arrays):
        return base if base is not None else arrays[0]
    arrays = [a.astype(dtype, copy=False) for a in arrays]
    base = None if base is None else base.astype(dtype, copy=False)
    rng = np.random.default_rng([seed, i]) if method.random else None
    try:
        merged = apply_method(method, arrays, base, model_parameters, parameters, spec.path,
                              spec.depth, rng)
    except ValueError as e:
        raise ValueError(f"{method.name} at weight {spec.path!r}: {e}") from None
    return np.asarray(merged).astype(spec.dtype)


def apply_method(method, arrays, base, model_parameters, parameters, path="", depth=0.0,
                 rng=None):
    """``method`` over one weight's arrays, its parameters resolved for the weight at
    ``path`` / ``depth`` (per-model ones as lists, defaults filled in); ``rng`` for the
    random methods.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.api import apply_method
    from kfuse.merge.methods import get_method
    models = [np.array([1.0, -2.0]), np.array([3.0, 1.0])]
    print(apply_method(get_method("ties"), models, np.zeros(2), [{}, {}], {"density": 0.5}))
    ```
    """
    kwargs = {}
    for p, default in method.model_parameters.items():
        values = []
        for mp in model_parameters:
            v = resolve(mp.get(p, parameters.get(p, default)), path, depth)
            values.append(default if v is None else v)
        kwargs[p] = values
    for p, default in method.global_parameters.items():
        if p == "seed":
            continue
        v = resolve(parameters.get(p, default), path, depth)
        kwargs[p] = default if v is None else v
    if method.random:
        kwargs["rng"] = rng
    if method.name == "slerp":
        return method.fn(arrays if base is None else [base] + arrays, **kwargs)
    if method.needs_base or method.takes_base:
        return method.fn(arrays, base, **kwargs)
    return method.fn(arrays, **kwargs)
