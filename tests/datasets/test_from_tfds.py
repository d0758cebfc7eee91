"""from_tfds on a TFDS data set the test writes itself (offline)."""

import numpy as np
import pytest

import kfuse.datasets as kd

tf = pytest.importorskip("tensorflow")
tfds = pytest.importorskip("tensorflow_datasets")
# tensorflow-datasets 4.9 imports importlib_resources when it writes a data set but does
# not declare it on Python >= 3.9: `pip install importlib_resources` runs this test
pytest.importorskip("importlib_resources", reason="tensorflow-datasets needs importlib_resources to write a data set")


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    rng = np.random.default_rng(0)
    splits = {}
    for split, n in (("train", 30), ("test", 12)):
        rows = {
            "pixels": rng.random((n, 4, 4, 1)).astype("float32"),
            "reading": rng.normal(size=(n, 3)).astype("float32"),
            "label": (np.arange(n) % 3).astype("int64"),
        }
        splits[split] = rows
    features = tfds.features.FeaturesDict(
        {
            "pixels": tfds.features.Tensor(shape=(4, 4, 1), dtype=np.float32),
            "reading": tfds.features.Tensor(shape=(3,), dtype=np.float32),
            "label": tfds.features.ClassLabel(names=["low", "mid", "high"]),
        }
    )
    tfds.dataset_builders.store_as_tfds_dataset(
        "kfuse_toy",
        "1.0.0",
        features,
        {s: tf.data.Dataset.from_tensor_slices(r) for s, r in splits.items()},
        data_dir=str(data_dir),
        disable_shuffling=True,
    )
    return str(data_dir), splits


def test_from_tfds_named_inputs(toy_dir):
    data_dir, rows = toy_dir
    data = kd.from_tfds("kfuse_toy", data_dir, inputs={"pixels": "image", "reading": "sensor"})
    assert data.input_shapes == {"image": (4, 4, 1), "sensor": (3,)}
    assert data.classes == ("low", "mid", "high") and data.info["splits"] == {"train": 30, "test": 12}
    np.testing.assert_array_equal(data.x_train["sensor"], rows["train"]["reading"])
    np.testing.assert_array_equal(data.x_test["image"], rows["test"]["pixels"])
    np.testing.assert_array_equal(data.y_test, rows["test"]["label"])


def test_from_tfds_errors(toy_dir):
    data_dir, _ = toy_dir
    with pytest.raises(FileNotFoundError, match=r"did you mean \['kfuse_toy'\]"):
        kd.from_tfds("kfuse_tyo", data_dir, inputs={"pixels": "image"})
    with pytest.raises(ValueError, match=r"no feature 'pixel'.*Did you mean \['pixels'\]"):
        kd.from_tfds("kfuse_toy", data_dir, inputs={"pixel": "image"})
    with pytest.raises(ValueError, match="has splits"):
        kd.from_tfds("kfuse_toy", data_dir, inputs={"pixels": "image"}, splits=("train", "validation"))
    with pytest.raises(ValueError, match="versions"):
        kd.from_tfds("kfuse_toy", data_dir, inputs={"pixels": "image"}, version="2.0.0")
    with pytest.raises(TypeError, match="non-empty dict"):
        kd.from_tfds("kfuse_toy", data_dir, inputs=["pixels"])
