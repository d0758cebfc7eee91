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
import tempfile
import keras, numpy as np, kfuse
x = keras.Input((4,), name="signal")
model = kfuse.stack([kfuse.Branch(keras.Model(x, keras.layers.Dense(3)(x)), name="mlp", inputs="signal")],
                    head=3)
base = tempfile.mkdtemp() + "/stack"
path = kfuse.export.export_saved_model(model, base)  # .../stack/1
kfuse.export.inspect(base)["1"]["serving_default"]["outputs"]  # logits, probabilities, prediction
body = kfuse.export.rest_payload({"signal": np.zeros((2, 4), "float32")}, signature=path)
```
"""

from kfuse.export.rest import parse_response, rest_payload
from kfuse.export.saved_model import (
    BRANCHES,
    SERVING,
    existing_versions,
    export_saved_model,
    inspect,
    latest,
    named_outputs,
    serving_inputs,
    signatures,
    verify,
)
from kfuse.export.versions import VersionExistsError

__all__ = [
    "BRANCHES",
    "SERVING",
    "VersionExistsError",
    "existing_versions",
    "export_saved_model",
    "inspect",
    "latest",
    "named_outputs",
    "parse_response",
    "rest_payload",
    "serving_inputs",
    "signatures",
    "verify",
]
