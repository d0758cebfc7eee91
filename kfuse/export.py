"""SavedModel export in TF Serving's layout (TensorFlow only).

`export_saved_model(model, "saved_models/NAME")` writes `saved_models/NAME/<version>/`
atomically (a temporary sibling renamed into place, so TF Serving never sees a half
written version) with a `serving_default` signature that takes the model's inputs by
name and returns named outputs (`logits` and `probabilities` for classifiers).
"""

import os
import shutil
import tempfile

import keras
import numpy as np


def existing_versions(base_dir):
    """Integer version directories under `base_dir`, ascending."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(int(d) for d in os.listdir(base_dir) if d.isdigit() and os.path.isdir(os.path.join(base_dir, d)))


def _input_specs(model):
    import tensorflow as tf

    specs = {}
    for tensor in model.inputs:
        name = tensor.name
        specs[name] = tf.TensorSpec((None, *tensor.shape[1:]), dtype=tensor.dtype, name=name)
    return specs


def _named_outputs(model, outputs):
    from keras import ops

    head = getattr(model, "head", None)
    if isinstance(outputs, dict):
        return dict(outputs)
    if isinstance(outputs, (list, tuple)):
        return {f"output_{i}": o for i, o in enumerate(outputs)}
    if head is None:
        return {"prediction": outputs}
    if head.activation == "softmax":
        return {"logits": outputs, "probabilities": ops.softmax(outputs, axis=-1)}
    if head.activation == "sigmoid":
        return {"logits": outputs, "probabilities": ops.sigmoid(outputs)}
    return {"prediction": outputs}


def export_saved_model(model, base_dir, version=None, overwrite=False):
    """Export `model` as a SavedModel at `base_dir/<version>/` for TF Serving.

    Args:
        model: a Keras model (a `kfuse.FusedModel` gets named outputs from its head).
        base_dir: the model's base path as TF Serving sees it.
        version: int, or None for one more than the highest existing version.
        overwrite: replace an existing version directory instead of refusing.

    Returns:
        the path of the version directory written.

    Example:

    ```python
    path = kfuse.export.export_saved_model(model, "saved_models/mnist1d_stack")
    ```
    """
    base_dir = os.fspath(base_dir)
    os.makedirs(base_dir, exist_ok=True)
    if version is None:
        version = (existing_versions(base_dir) or [0])[-1] + 1
    if not isinstance(version, (int, np.integer)) or version < 1:
        raise ValueError(f"`version` must be a positive int; received {version!r}")
    final = os.path.join(base_dir, str(int(version)))
    if os.path.exists(final) and not overwrite:
        raise FileExistsError(f"{final} exists; pass overwrite=True or another version")
    specs = _input_specs(model)

    def serve(inputs):
        return _named_outputs(model, model(inputs, training=False))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve, input_signature=[specs])
    staging = tempfile.mkdtemp(prefix=f".{version}.partial-", dir=base_dir)
    try:
        target = os.path.join(staging, "model")
        archive.write_out(target, verbose=False)
        if os.path.exists(final):
            retired = tempfile.mkdtemp(prefix=f".{version}.old-", dir=base_dir)
            os.replace(final, os.path.join(retired, "model"))
            shutil.rmtree(retired, ignore_errors=True)
        os.replace(target, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
