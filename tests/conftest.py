import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KFUSE_QUICK", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield
    _clear_kept()  # each test starts with no worker kept by another (tests/trainers/test_kept.py)
    keras.backend.clear_session()


def _clear_kept():
    try:
        from kfuse.trainers import kept
    except ImportError:  # a backend without TensorFlow: nothing kept there
        return
    kept.clear()


@pytest.fixture(scope="session")
def mnist1d():
    from kfuse.datasets.mnist1d import load_mnist1d

    return load_mnist1d()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def requires_tensorflow():
    return pytest.mark.skipif(
        keras.backend.backend() != "tensorflow", reason="TensorFlow-only feature"
    )


@pytest.fixture
def side_by_side_calls(monkeypatch):
    """The model counts of every `SideBySide.fit` call made in the test (it still trains)."""
    from kfuse.trainers import side_by_side

    calls = []
    original = side_by_side.SideBySide.fit

    def counted(self, models, *args, **kwargs):
        calls.append(len(models))
        return original(self, models, *args, **kwargs)

    monkeypatch.setattr(side_by_side.SideBySide, "fit", counted)
    return calls


# Tests that start a local Ray or Dask cluster (or the engines' worker processes) run in the
# suite's serial pass: two clusters started at once by the parallel pass's workers would share
# the 2 cores and Ray's session directory (`make test` runs `-m clusters` on its own).
CLUSTER_TESTS = ("tests/engines/", "tests/distribute/test_ray.py")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(part in item.nodeid for part in CLUSTER_TESTS):
            item.add_marker(pytest.mark.clusters)
