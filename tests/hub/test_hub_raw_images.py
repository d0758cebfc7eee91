"""A fused model over a KerasHub image Task with a preprocessor (resize, rescale): its
SavedModel takes raw uint8 images of their original size (the Task's image converter
inside the serving signature), served by a fresh process that imports only TensorFlow."""

import json
import subprocess
import sys

import numpy as np
import pytest

import kfuse
from tests.hub.families import backbone_families

keras_hub = pytest.importorskip("keras_hub")

SERVE = """
import json, sys
import numpy as np, tensorflow as tf
path, image_file = sys.argv[1], sys.argv[2]
signature = tf.saved_model.load(path).signatures["serving_default"]
out = signature(resnet_images=tf.constant(np.load(image_file)))
print(json.dumps({"logits": out["logits"].numpy().tolist(), "hub": "keras_hub" in sys.modules}))
"""


def _resnet_task():
    converter = keras_hub.layers.ResNetImageConverter(
        image_size=(16, 16), scale=1 / 255.0, offset=-0.5
    )
    preprocessor = keras_hub.models.ResNetImageClassifierPreprocessor(image_converter=converter)
    return keras_hub.models.ResNetImageClassifier(
        backbone_families()["resnet"]()[0], 3, preprocessor=preprocessor
    )


@pytest.mark.slow
def test_saved_model_serves_raw_images_of_their_original_size(tmp_path):
    task = _resnet_task()
    model = kfuse.stack([kfuse.Branch(task, name="resnet", inputs="img", trainable=False)], head=2)
    raw = np.random.default_rng(0).integers(0, 256, size=(3, 24, 20, 3)).astype("uint8")
    preprocessed = np.asarray(task.preprocessor(raw.astype("float32")))
    assert preprocessed.shape == (3, 16, 16, 3) and preprocessed.max() <= 0.5  # resized, rescaled
    want = model.predict({"img": preprocessed}, verbose=0)
    path = kfuse.export.export_saved_model(model, tmp_path / "served")
    inputs = kfuse.export.inspect(tmp_path / "served")["1"]["serving_default"]["inputs"]
    assert list(inputs) == ["resnet_images"]
    np.save(tmp_path / "img.npy", raw)
    done = subprocess.run([sys.executable, "-c", SERVE, path, str(tmp_path / "img.npy")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served["hub"] is False
    np.testing.assert_allclose(np.array(served["logits"]), want, atol=1e-5)
    kfuse.export.export_saved_model(model, tmp_path / "kept", raw_images=False)
    kept = kfuse.export.inspect(tmp_path / "kept")["1"]["serving_default"]["inputs"]
    assert list(kept) == ["img"]
