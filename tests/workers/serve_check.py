"""Load a kfuse export the way a server does: a fresh process that imports only
TensorFlow (no kfuse, no keras). Run by tests/export/test_export.py.

Usage: python serve_check.py EXPORT_VERSION_DIR INPUTS.npz OUT_DIR [PAYLOAD.json ...]

Calls `serving_default` with the named inputs from INPUTS.npz and writes the outputs to
OUT_DIR/served.npz. Each PAYLOAD.json (a TF Serving REST predict body) is answered the
way TF Serving's REST API answers it (row format -> "predictions", columnar ->
"outputs"; tensorflow/serving g3doc/api_rest.md) and written to OUT_DIR/<name>.response.json.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def columns(body):
    if "instances" in body:
        rows = body["instances"]
        if rows and isinstance(rows[0], dict):
            return {k: [row[k] for row in rows] for k in rows[0]}, "row"
        return rows, "row"
    return body["inputs"], "columnar"


def answer(signature, body):
    data, layout = columns(body)
    specs = signature.structured_input_signature[1]
    if not isinstance(data, dict):
        data = {next(iter(specs)): data}
    if sorted(data) != sorted(specs):
        return {"error": f"inputs {sorted(data)} do not match the signature's {sorted(specs)}"}
    outputs = signature(**{k: tf.constant(v, dtype=specs[k].dtype) for k, v in data.items()})
    outputs = {k: v.numpy().tolist() for k, v in outputs.items()}
    if layout == "columnar":
        return {"outputs": outputs if len(outputs) > 1 else next(iter(outputs.values()))}
    n = len(next(iter(outputs.values())))
    if len(outputs) == 1:
        return {"predictions": next(iter(outputs.values()))}
    return {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(n)]}


def main(export_dir, inputs_path, out_dir, *payloads):
    loaded = tf.saved_model.load(export_dir)
    signature = loaded.signatures["serving_default"]
    inputs = dict(np.load(inputs_path))
    served = signature(**{k: tf.constant(v) for k, v in inputs.items()})
    np.savez(os.path.join(out_dir, "served.npz"), **{k: v.numpy() for k, v in served.items()})
    for path in payloads:
        with open(path) as f:
            body = json.load(f)
        name = os.path.splitext(os.path.basename(path))[0]
        with open(os.path.join(out_dir, f"{name}.response.json"), "w") as f:
            json.dump(answer(loaded.signatures[body.get("signature_name", "serving_default")], body), f)
    report = {
        "signatures": sorted(loaded.signatures),
        "kfuse_imported": "kfuse" in sys.modules,
        "keras_imported": any(m == "keras" or m.startswith("keras.") for m in sys.modules),
    }
    print("RESULT " + json.dumps(report), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
