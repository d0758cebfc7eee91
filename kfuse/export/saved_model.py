"""Write and read SavedModels in TF Serving's layout (the body of `kfuse.export`)."""

import os
import re
import shutil
import warnings

import keras
import numpy as np

from kfuse.branches.hub_preprocessors import image_preprocessors, text_preprocessors
from kfuse.branches.lora import merged_copy
from kfuse.export import versions as _store
from kfuse.export.versions import VersionExistsError  # noqa: F401  (public name)
from kfuse.utils.backend_support import require

SERVING = "serving_default"
BRANCHES = "branch_outputs"
_AUTO_NAME = re.compile(r"^(input_layer|keras_tensor|input)(_\d+)?$")


def existing_versions(base_dir):
    """Integer version directories under `base_dir`, ascending (complete or not)."""
    return _store.integer_dirs(base_dir)


def _incomplete(directory):
    return (
        f"{directory} is an incomplete version: it has no saved_model.pb (a copy or an export "
        "that did not finish). TF Serving would try to load it and fail; delete it, or "
        f"re-export into it with version={os.path.basename(directory)}, overwrite=True"
    )


def _model_inputs(model):
    """The model's inputs in the structure it is called with (a dict for dict inputs)."""
    try:
        return model.input
    except (AttributeError, ValueError):
        return model.inputs


# -- what the model takes and gives ---------------------------------------------------------
def serving_inputs(model):
    """[(name, KerasTensor)] of the model's inputs and how the model is called ('dict',
    'list' or 'single'). Raises for an unbuilt model or unnamed inputs."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"export needs a keras.Model; received {type(model).__name__}")
    try:
        tensors = model.inputs
    except (AttributeError, ValueError) as error:
        tensors, cause = None, error
    else:
        cause = None
    if not tensors or not model.built:
        raise ValueError(
            f"Model '{model.name}' is not built: it has no defined inputs ({cause or 'none'}). "
            "Start it with keras.Input(shape, name=...) or call it once on data before exporting."
        )
    struct = _model_inputs(model)
    if isinstance(struct, dict):
        pairs, mode = list(struct.items()), "dict"
    else:
        pairs, mode = [(t.name, t) for t in tensors], ("single" if len(tensors) == 1 else "list")
    for index, (name, _) in enumerate(pairs):
        if not isinstance(name, str) or _AUTO_NAME.match(name):
            raise ValueError(
                f"Model '{model.name}': input #{index} has the auto-generated name {name!r}. "
                "Serving clients address inputs by name: build it with keras.Input(shape, name='...')"
            )
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"Model '{model.name}': input names repeat: {names}")
    return pairs, mode


def _output_layer_names(model):
    names = getattr(model, "output_names", None)
    if names:
        return list(names)
    return [model.layers[-1].name] if model.layers else ["output"]


def named_outputs(model, outputs):
    """The export's outputs as a dict of name -> tensor."""
    import tensorflow as tf

    if isinstance(outputs, dict):
        return dict(outputs)
    if isinstance(outputs, (list, tuple)):
        return dict(zip(_output_layer_names(model), outputs, strict=True))
    head = getattr(model, "head", None)
    if head is None:
        return {_output_layer_names(model)[0]: outputs}
    logits = tf.cast(outputs, "float32")
    if head.activation == "softmax":
        return {
            "logits": logits,
            "probabilities": tf.nn.softmax(logits, axis=-1),
            "prediction": tf.argmax(logits, axis=-1),
        }
    if head.activation == "sigmoid":
        return {
            "logits": logits,
            "probabilities": tf.sigmoid(logits),
            "prediction": tf.cast(logits > 0, "int64"),
        }
    return {"prediction": outputs}


def _call(model, mode, names, inputs):
    if mode == "dict":
        return model(inputs, training=False)
    if mode == "single":
        return model(inputs[names[0]], training=False)
    return model([inputs[n] for n in names], training=False)


# -- writing ----------------------------------------------------------------------------------
def _require_savedmodel(capability):
    require(
        capability, ("tensorflow", "jax"), needs_tensorflow=True,
        instead="Save the model with model.save('model.keras') (any backend) and export that "
        "file from a process with KERAS_BACKEND=tensorflow.",
    )


def export_saved_model(
    model, base_dir, version=None, overwrite=False, branch_outputs=False, raw_text=True,
    merge_lora=False, raw_images=True,
):  # fmt: skip
    """Export `model` as a SavedModel at `base_dir/<version>/` for TF Serving.

    Args:
        model (keras.Model): a built Keras model with named inputs (a `kfuse.FusedModel` gets
            `logits`/`probabilities`/`prediction` outputs from its head).
        base_dir (str | os.PathLike): the model's base path as TF Serving sees it.
        version (int | None): int, or None for one more than the highest existing version.
        overwrite (bool): replace an existing version directory instead of refusing.
        branch_outputs (bool): add a `branch_outputs` signature returning every branch's
            output (a `kfuse.FusedModel` only; on the model's own inputs).
        raw_text (bool): a branch over a KerasHub Task with a text preprocessor is served on raw
            strings: its token inputs are replaced by one string input `<branch>_text`,
            tokenized inside the SavedModel by the Task's preprocessor (serving needs
            `import tensorflow_text` for the tokenizer ops). False keeps the token inputs.
        merge_lora (bool): serve a copy of the model whose LoRA branches (`Branch(lora_rank=)`)
            have each adapter's update folded into its base kernel: the same outputs, no
            LoRA variables, no extra matmuls (`kfuse.branches.lora.merged_copy`).
        raw_images (bool): a branch over a KerasHub image Task whose preprocessor has an image
            converter is served on raw images: its input is replaced by `<branch>_images`
            (uint8, any height and width), resized and rescaled inside the SavedModel by
            the Task's preprocessor. False keeps the preprocessed image input.

    Returns:
        str: the path of the version directory written.

    Raises `kfuse.utils.backend_support.BackendError` on the PyTorch backend (Keras cannot
    trace it into a SavedModel) and where TensorFlow is not installed.

    Example:

    ```python
    import os, tempfile
    import keras, kfuse
    x = keras.Input((4,), name="signal")
    model = kfuse.stack([kfuse.Branch(keras.Model(x, keras.layers.Dense(2)(x)), name="m", inputs="signal")],
                        head=kfuse.layers.heads.Regression(1))
    base = os.path.join(tempfile.mkdtemp(), "m")
    kfuse.export.export_saved_model(model, base)  # .../m/1 (concurrent exports get distinct ones)
    kfuse.export.export_saved_model(model, base, version=1, overwrite=True)  # swapped in atomically
    ```
    """
    _require_savedmodel("kfuse.export.export_saved_model")
    import tensorflow as tf

    if merge_lora:
        model = merged_copy(model)
    pairs, mode = serving_inputs(model)
    names = [n for n, _ in pairs]
    base_dir = os.fspath(base_dir)
    if os.path.exists(base_dir) and not os.path.isdir(base_dir):
        raise ValueError(f"base_dir {base_dir!r} is a file; TF Serving needs a directory of versions")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1
    ):
        raise ValueError(f"`version` must be a positive int; received {version!r}")
    version = None if version is None else int(version)
    specs = {
        n: tf.TensorSpec((None, *t.shape[1:]), dtype=t.dtype, name=n) for n, t in pairs
    }
    raw = text_preprocessors(model) if raw_text else []
    images = image_preprocessors(model) if raw_images else []
    served = _raw_specs(specs, raw, images)

    def serve(inputs):
        feed = {n: inputs[n] for n in names if n in inputs}
        for text, preprocessor, mapping in raw:
            tokens = preprocessor(inputs[text])
            feed.update({n: tf.cast(tokens[key], specs[n].dtype) for n, key in mapping.items()})
        for name, preprocessor, n in images:
            feed[n] = tf.cast(preprocessor(tf.cast(inputs[name], "float32")), specs[n].dtype)
        return named_outputs(model, _call(model, mode, names, feed))

    archive = keras.export.ExportArchive()
    archive.track(model)
    for _, preprocessor, _ in raw + images:
        archive.track(preprocessor)
    archive.add_endpoint(SERVING, serve, input_signature=[served])
    if branch_outputs:
        probe = _branch_probe(model)
        archive.track(probe)
        archive.add_endpoint(BRANCHES, lambda inputs: probe(inputs, training=False), input_signature=[specs])
    version, staging = _store.reserve(base_dir, version, overwrite)
    final = os.path.join(base_dir, str(version))
    try:
        target = os.path.join(staging, "model")
        archive.write_out(target, verbose=False)
        _store.publish(target, final, base_dir, version, overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _raw_specs(specs, raw, images):
    """The serving signature: `specs` (the model's inputs) with each raw-text branch's
    token inputs replaced by its `<branch>_text` strings and each raw-image branch's input
    by its `<branch>_images` (uint8, any height and width, the input's channels)."""
    import tensorflow as tf

    fed = {n for _, _, m in raw for n in m} | {n for _, _, n in images}
    served = {n: s for n, s in specs.items() if n not in fed}
    served.update({text: tf.TensorSpec((None,), tf.string, name=text) for text, _, _ in raw})
    for name, _, n in images:
        served[name] = tf.TensorSpec((None, None, None, specs[n].shape[-1]), tf.uint8, name=name)
    return served


def _branch_probe(model):
    branch_names = getattr(model, "branch_names", None)
    if not branch_names:
        raise ValueError(
            f"branch_outputs=True needs a kfuse.FusedModel (built by kfuse.stack); "
            f"model '{model.name}' has no branches"
        )
    outputs = {name: model.branch_tensor(name) for name in branch_names}
    return keras.Model(_model_inputs(model), outputs, name=f"{model.name}_branches")


# -- reading ----------------------------------------------------------------------------------
def _version_dirs(path):
    """{version: directory} of every integer version (complete or not) under `path`."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"{path!r} does not exist (expected an export's base directory or a version)")
    if _store.is_complete(path):
        return {os.path.basename(os.path.normpath(path)): path}
    versions = existing_versions(path)
    if not versions:
        name = os.path.basename(os.path.normpath(path))
        if name.isdigit() and os.path.isdir(path):
            raise ValueError(_incomplete(path))
        raise ValueError(f"{path!r} holds no SavedModel and no integer version directories")
    return {str(v): os.path.join(path, str(v)) for v in versions}


def signatures(version_dir):
    """{signature: {"inputs": {name: {"dtype", "shape"}}, "outputs": {...}}} read from
    `saved_model.pb` (without loading the graph)."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import dtypes

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())

    def describe(infos):
        return {
            key: {
                "dtype": dtypes.as_dtype(info.dtype).name,
                "shape": None if info.tensor_shape.unknown_rank
                else [None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim],
            }
            for key, info in sorted(infos.items())
        }

    found = {}
    for graph in proto.meta_graphs:
        for key, sig in graph.signature_def.items():
            if key.startswith("__"):
                continue
            found[key] = {"inputs": describe(sig.inputs), "outputs": describe(sig.outputs)}
    return dict(sorted(found.items()))


def inspect(path):
    """Versions of an export and each version's signatures, inputs and outputs.

    `path` is a base directory (`saved_models/NAME`) or one version directory. A version
    directory without `saved_model.pb` is listed as `{"incomplete": message}` (with a
    warning): TF Serving would try to load it.
    """
    found = {}
    for version, directory in _version_dirs(path).items():
        if _store.is_complete(directory):
            found[version] = signatures(directory)
        else:
            warnings.warn(_incomplete(directory), stacklevel=2)
            found[version] = {"incomplete": _incomplete(directory)}
    return found


def latest(path):
    """The highest complete version directory (incomplete ones are skipped with a warning)."""
    dirs = _version_dirs(path)
    for version in sorted(dirs, key=lambda v: int(v) if v.isdigit() else -1, reverse=True):
        if _store.is_complete(dirs[version]):
            return dirs[version]
        warnings.warn(_incomplete(dirs[version]) + "; skipping it", stacklevel=2)
    raise ValueError(f"{os.fspath(path)!r} holds no complete version: " + _incomplete(dirs[max(dirs, key=int)]))


def as_named(x, names):
    """{input name: array} from a dict, or from one array for a signature of one input."""
    if isinstance(x, dict):
        return {k: np.asarray(v) for k, v in x.items()}
    if len(names) != 1:
        raise ValueError(f"The signature takes inputs {names}; pass a dict keyed by those names")
    return {names[0]: np.asarray(x)}


def verify(model, path, x, atol=1e-5):
    """Load the export at `path` in this process, call `serving_default` on `x` (a dict of
    input name -> array, or one array), and check it matches `model`'s predictions.

    Returns the largest absolute difference; raises ValueError above `atol`.
    """
    _require_savedmodel("kfuse.export.verify")
    import tensorflow as tf

    pairs, mode = serving_inputs(model)
    names = [n for n, _ in pairs]
    inputs = as_named(x, names)
    loaded = tf.saved_model.load(latest(path))
    served = loaded.signatures[SERVING](**{k: tf.constant(v) for k, v in inputs.items()})
    expected = named_outputs(model, _call(model, mode, names, inputs))
    worst = 0.0
    for key, value in expected.items():
        diff = float(np.max(np.abs(np.asarray(served[key], "float64") - np.asarray(value, "float64"))))
        worst = max(worst, diff)
    if worst > atol:
        raise ValueError(f"The export at {path} differs from the model by {worst:.3g} > atol={atol}")
    return worst


