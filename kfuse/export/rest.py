"""TF Serving's REST predict API: the request body and the answer (see `kfuse.export`).

`rest_payload(x, signature=...)` checks names, shapes and dtypes against a model, an
export path or a dict before anything is sent: strings for a float input, or floats for
an integer (token) input, which TF Serving would refuse or silently truncate, are refused.
"""

import json
import os

import keras
import numpy as np

from kfuse.export import saved_model as _export
from kfuse.export.saved_model import as_named as _as_named


def _expected_inputs(signature, signature_name):
    """{name: (shape without batch, dtype name or None)} from a model, an export path or a
    dict of name -> shape (or -> {"shape": ..., "dtype": ...})."""
    if signature is None:
        return None
    if isinstance(signature, keras.Model):
        return {n: (tuple(t.shape[1:]), str(t.dtype)) for n, t in _export.serving_inputs(signature)[0]}
    if isinstance(signature, dict):
        return {
            k: (tuple(v["shape"][1:]), v.get("dtype")) if isinstance(v, dict) else (tuple(v), None)
            for k, v in signature.items()
        }
    if not isinstance(signature, (str, os.PathLike)):
        raise TypeError(
            "`signature` must be a keras.Model, an export path or a dict of input name -> shape; "
            f"received {type(signature).__name__}"
        )
    found = _export.signatures(_export.latest(signature))
    if signature_name not in found:
        raise ValueError(f"{signature!r} has no signature {signature_name!r}; it has {sorted(found)}")
    return {k: (tuple(v["shape"][1:]), v["dtype"]) for k, v in found[signature_name]["inputs"].items()}


def rest_payload(x, format="instances", signature_name=_export.SERVING, signature=None):
    """The JSON body (a dict; send `json.dumps(body)`) of TF Serving's REST predict API.

    Args:
        x (dict[str, ArrayLike] | ArrayLike): a dict of input name -> array (batch first), or one
            array for one input.
        format (str): "instances" (row format: one object per example) or "inputs" (columnar).
        signature_name (str): the signature to call.
        signature (keras.Model | str | dict | None): optional model, export path or dict of name ->
            shape to check the input names, shapes and dtypes against; a bare `x` takes the
            signature's one name.

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
        inputs = {k: _json_ready(v) for k, v in x.items()}
    elif expected is not None:
        inputs = {k: _json_ready(v) for k, v in _as_named(x, list(expected)).items()}
    else:
        inputs = None
    if expected is not None:
        _check_payload(inputs, expected)
    body = {"signature_name": signature_name}
    if inputs is None:  # one unnamed input
        body[format] = _json_ready(x).tolist()
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


def _json_ready(values):
    """numpy, strings as str (JSON has no bytes): `v.tolist()` gives JSON values."""
    array = np.asarray(values)
    if array.dtype.kind in "SO":
        array = np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v, otypes=[object])(array)
    if array.dtype.kind == "O" and array.size and all(isinstance(v, str) for v in array.flat):
        return array.astype(str)
    return array


def _check_payload(inputs, expected):
    missing, extra = sorted(set(expected) - set(inputs)), sorted(set(inputs) - set(expected))
    if missing or extra:
        raise ValueError(
            f"REST payload inputs {sorted(inputs)} do not match the signature's {sorted(expected)} "
            f"(missing {missing}, unexpected {extra})"
        )
    for name, (shape, dtype) in expected.items():
        _check_dtype(name, inputs[name], dtype)
        got = tuple(inputs[name].shape[1:])
        if len(got) != len(shape) or any(e is not None and e != g for e, g in zip(shape, got, strict=True)):
            raise ValueError(
                f"REST payload input {name!r} has shape {tuple(inputs[name].shape)} but the "
                f"signature expects (batch, {', '.join('None' if d is None else str(d) for d in shape)})"
            )


def _check_dtype(name, value, dtype):
    """Refuse values TF Serving would reject or silently change for a `dtype` input."""
    if dtype is None:
        return
    kind = np.dtype("float32" if dtype == "bfloat16" else dtype).kind if dtype != "string" else "S"
    got = value.dtype.kind
    text = got in "USO"
    if kind in "fc" and (text or got == "c" and kind == "f"):
        sample = value.reshape(-1)[:1].tolist()
        raise TypeError(
            f"REST payload input {name!r} holds {value.dtype} values (e.g. {sample}) but the "
            f"signature expects {dtype} numbers: convert them, e.g. np.asarray(x, 'float32')"
        )
    if kind in "iu" and (text or got in "fc"):
        sample = value.reshape(-1)[:1].tolist()
        fix = "round or map them to integer ids, then .astype('int32')" if got in "fc" else \
            "map each token to its integer id first"
        raise TypeError(
            f"REST payload input {name!r} holds {value.dtype} values (e.g. {sample}) but the "
            f"signature expects {dtype} (token ids); TF Serving would truncate or refuse them: {fix}"
        )
    if kind == "S" and not text:
        raise TypeError(
            f"REST payload input {name!r} holds {value.dtype} numbers but the signature expects "
            "strings: pass the raw text"
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
