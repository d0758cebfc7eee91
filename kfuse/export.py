"""SavedModel export in TF Serving's layout, inspection, and the REST predict API (TF only).

`export_saved_model(model, "saved_models/NAME")` writes `saved_models/NAME/<version>/`
atomically: into a hidden temporary sibling (`.<version>.partial-*`, a name TF Serving
never loads) renamed into place when complete, so a crash never leaves an integer
version directory behind. Its `serving_default` signature takes the model's inputs by
name and returns named outputs: `logits`, `probabilities` and `prediction` (the class id)
for classifiers, `prediction` for regression, the output layers' names otherwise.
`branch_outputs=True` adds a second signature, `branch_outputs`, with every branch's
output keyed by branch name.

`inspect(path)` lists versions, signatures, input/output names and shapes;
`verify(model, path, x)` checks an export against the Keras model;
`rest_payload(x)` / `parse_response(answer)` speak TF Serving's REST predict API.

Example:

```python
import os, tempfile, keras, numpy as np, kfuse
base = keras.Sequential([keras.Input((8,), name="signal"), keras.layers.Dense(3)])
model = kfuse.stack([kfuse.Branch(base, name="a")], fusion=None, head=3)
x = np.zeros((4, 8), "float32")
base_dir = os.path.join(tempfile.mkdtemp(), "mnist1d_stack")
path = kfuse.export.export_saved_model(model, base_dir)  # .../1
kfuse.export.inspect(base_dir)
body = kfuse.export.rest_payload({"signal": x[:2]}, signature=path)  # json.dumps(body)
```
"""

import json
import os
import re
import shutil
import tempfile

import keras
import numpy as np

SERVING = "serving_default"
BRANCHES = "branch_outputs"
_AUTO_NAME = re.compile(r"^(input_layer|keras_tensor|input)(_\d+)?$")


class VersionExistsError(FileExistsError, ValueError):
    """The version directory exists and `overwrite=True` was not given."""


def existing_versions(base_dir):
    """Integer version directories under `base_dir`, ascending."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(int(d) for d in os.listdir(base_dir) if d.isdigit() and os.path.isdir(os.path.join(base_dir, d)))


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
    struct = getattr(model, "_inputs_struct", None)
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
def export_saved_model(model, base_dir, version=None, overwrite=False, branch_outputs=False):
    """Export `model` as a SavedModel at `base_dir/<version>/` for TF Serving.

    Args:
        model: a built Keras model with named inputs (a `kfuse.FusedModel` gets
            `logits`/`probabilities`/`prediction` outputs from its head).
        base_dir: the model's base path as TF Serving sees it.
        version: int, or None for one more than the highest existing version.
        overwrite: replace an existing version directory instead of refusing.
        branch_outputs: add a `branch_outputs` signature returning every branch's
            output (a `kfuse.FusedModel` only).

    Returns:
        the path of the version directory written.

    Example:

    ```python
    import os, tempfile, keras, kfuse
    base = keras.Sequential([keras.Input((8,), name="signal"), keras.layers.Dense(3)])
    model = kfuse.stack([kfuse.Branch(base, name="a")], fusion=None, head=3)
    path = kfuse.export.export_saved_model(model, os.path.join(tempfile.mkdtemp(), "stack"))
    ```
    """
    import tensorflow as tf

    pairs, mode = serving_inputs(model)
    names = [n for n, _ in pairs]
    base_dir = os.fspath(base_dir)
    if os.path.exists(base_dir) and not os.path.isdir(base_dir):
        raise ValueError(f"base_dir {base_dir!r} is a file; TF Serving needs a directory of versions")
    if version is None:
        version = (existing_versions(base_dir) or [0])[-1] + 1
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ValueError(f"`version` must be a positive int; received {version!r}")
    final = os.path.join(base_dir, str(int(version)))
    if os.path.exists(final) and not overwrite:
        raise VersionExistsError(f"{final} exists; pass overwrite=True or another version")
    specs = {
        n: tf.TensorSpec((None, *t.shape[1:]), dtype=t.dtype, name=n) for n, t in pairs
    }

    def serve(inputs):
        return named_outputs(model, _call(model, mode, names, inputs))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SERVING, serve, input_signature=[specs])
    if branch_outputs:
        probe = _branch_probe(model)
        archive.track(probe)
        archive.add_endpoint(BRANCHES, lambda inputs: probe(inputs, training=False), input_signature=[specs])
    os.makedirs(base_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{int(version)}.partial-", dir=base_dir)
    try:
        target = os.path.join(staging, "model")
        archive.write_out(target, verbose=False)
        _publish(target, final, base_dir, version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _branch_probe(model):
    branch_names = getattr(model, "branch_names", None)
    if not branch_names:
        raise ValueError(
            f"branch_outputs=True needs a kfuse.FusedModel (built by kfuse.stack); "
            f"model '{model.name}' has no branches"
        )
    outputs = {name: model.branch_tensor(name) for name in branch_names}
    return keras.Model(model.inputs if not isinstance(model._inputs_struct, dict) else model._inputs_struct,
                       outputs, name=f"{model.name}_branches")


def _publish(target, final, base_dir, version):
    """Move the finished SavedModel into place (a rename: atomic on one filesystem)."""
    if os.path.exists(final):
        retired = tempfile.mkdtemp(prefix=f".{int(version)}.old-", dir=base_dir)
        os.replace(final, os.path.join(retired, "model"))
        shutil.rmtree(retired, ignore_errors=True)
    os.replace(target, final)


# -- reading ----------------------------------------------------------------------------------
def _version_dirs(path):
    path = os.fspath(path)
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return {os.path.basename(os.path.normpath(path)): path}
    versions = existing_versions(path)
    if not versions:
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

    `path` is a base directory (`saved_models/NAME`) or one version directory.
    """
    return {version: signatures(directory) for version, directory in _version_dirs(path).items()}


def latest(path):
    """The version directory TF Serving would load: the highest integer version."""
    dirs = _version_dirs(path)
    return dirs[max(dirs, key=lambda v: int(v) if v.isdigit() else -1)]


def verify(model, path, x, atol=1e-5):
    """Load the export at `path` in this process, call `serving_default` on `x` (a dict of
    input name -> array, or one array), and check it matches `model`'s predictions.

    Returns the largest absolute difference; raises ValueError above `atol`.
    """
    import tensorflow as tf

    pairs, mode = serving_inputs(model)
    names = [n for n, _ in pairs]
    inputs = _as_named(x, names)
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


# -- REST ---------------------------------------------------------------------------------------
def _as_named(x, names):
    if isinstance(x, dict):
        return {k: np.asarray(v) for k, v in x.items()}
    if len(names) != 1:
        raise ValueError(f"The signature takes inputs {names}; pass a dict keyed by those names")
    return {names[0]: np.asarray(x)}


def _expected_inputs(signature, signature_name):
    """{name: shape without batch} from a model, an export path or a dict."""
    if signature is None:
        return None
    if isinstance(signature, keras.Model):
        return {n: tuple(t.shape[1:]) for n, t in serving_inputs(signature)[0]}
    if isinstance(signature, dict):
        return {k: tuple(v) for k, v in signature.items()}
    found = signatures(latest(signature))
    if signature_name not in found:
        raise ValueError(f"{signature!r} has no signature {signature_name!r}; it has {sorted(found)}")
    return {k: tuple(v["shape"][1:]) for k, v in found[signature_name]["inputs"].items()}


def rest_payload(x, format="instances", signature_name=SERVING, signature=None):
    """The JSON body (a dict; send `json.dumps(body)`) of TF Serving's REST predict API.

    Args:
        x: a dict of input name -> array (batch first), or one array for one input.
        format: "instances" (row format: one object per example) or "inputs" (columnar).
        signature_name: the signature to call.
        signature: optional model, export path or dict of name -> shape to check the
            input names and shapes against; a bare `x` takes the signature's one name.

    Example:

    ```python
    import numpy as np, kfuse
    kfuse.export.rest_payload({"signal": np.zeros((1, 2))}, format="inputs")
    # {'signature_name': 'serving_default', 'inputs': {'signal': [[0.0, 0.0]]}}
    ```
    """
    if format not in ("instances", "inputs"):
        raise ValueError(f"format must be 'instances' or 'inputs'; received {format!r}")
    expected = _expected_inputs(signature, signature_name)
    if isinstance(x, dict):
        inputs = {k: np.asarray(v) for k, v in x.items()}
    elif expected is not None:
        inputs = _as_named(x, list(expected))
    else:
        inputs = None
    if expected is not None:
        _check_payload(inputs, expected)
    body = {"signature_name": signature_name}
    if inputs is None:  # one unnamed input
        body[format] = np.asarray(x).tolist()
        return body
    sizes = {k: (v.shape[0] if v.ndim else None) for k, v in inputs.items()}
    if format == "inputs":
        body["inputs"] = {k: v.tolist() for k, v in inputs.items()}
        return body
    if None in sizes.values() or len(set(sizes.values())) != 1:
        raise ValueError(f"Row format needs every input to have the same batch size; received {sizes}")
    n = next(iter(sizes.values()))
    body["instances"] = [{k: v[i].tolist() for k, v in inputs.items()} for i in range(n)]
    return body


def _check_payload(inputs, expected):
    missing, extra = sorted(set(expected) - set(inputs)), sorted(set(inputs) - set(expected))
    if missing or extra:
        raise ValueError(
            f"REST payload inputs {sorted(inputs)} do not match the signature's {sorted(expected)} "
            f"(missing {missing}, unexpected {extra})"
        )
    for name, shape in expected.items():
        got = tuple(inputs[name].shape[1:])
        if len(got) != len(shape) or any(e is not None and e != g for e, g in zip(shape, got, strict=True)):
            raise ValueError(
                f"REST payload input {name!r} has shape {tuple(inputs[name].shape)} but the "
                f"signature expects (batch, {', '.join('None' if d is None else str(d) for d in shape)})"
            )


def parse_response(response):
    """Read TF Serving's REST predict answer (a JSON str/bytes, a dict, or an object with
    `.json()`): a dict of output name -> array, or one array when there is one output.
    Raises RuntimeError carrying the server's `error` message."""
    if hasattr(response, "json") and callable(response.json):
        response = response.json()
    if isinstance(response, (str, bytes, bytearray)):
        response = json.loads(response)
    if not isinstance(response, dict):
        raise ValueError(f"Not a TF Serving predict response: {response!r:.200}")
    if "error" in response:
        raise RuntimeError(f"TF Serving returned an error: {response['error']}")
    if "predictions" in response:
        rows = response["predictions"]
        if rows and isinstance(rows[0], dict):
            return {k: np.asarray([row[k] for row in rows]) for k in rows[0]}
        return np.asarray(rows)
    if "outputs" in response:
        outputs = response["outputs"]
        if isinstance(outputs, dict):
            return {k: np.asarray(v) for k, v in outputs.items()}
        return np.asarray(outputs)
    raise ValueError(f"A predict response has 'predictions' or 'outputs'; received keys {sorted(response)}")
