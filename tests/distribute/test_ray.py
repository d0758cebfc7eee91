"""fit_on_ray and search_on_ray on a real local Ray cluster (2 CPUs), and their refusals.

fit_on_ray: Ray Train's TensorflowTrainer starts 2 worker processes with TF_CONFIG; they
train one stack under MultiWorkerMirroredStrategy. Their weights must be identical, and
equal (to float-summation order) the same model trained in this process on whole batches.
search_on_ray: KerasTuner's chief and 2 workers as Ray actors run every trial once, and
the best model returned scores what the chief recorded for it.
"""

import functools
import os
import socket
import subprocess
import sys
import threading
from collections import Counter

import keras
import numpy as np
import pytest

from tests.conftest import requires_tensorflow

ray = pytest.importorskip("ray")

from kfuse.distribute.ray_train import fit_on_ray, worker_dataset  # noqa: E402
from kfuse.tuning.ray_search import search_on_ray  # noqa: E402
from tests.workers import ray_jobs  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EPOCHS = 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_importing_kfuse_imports_no_engine():
    code = (
        "import sys, kfuse, kfuse.distribute, kfuse.tuning; "
        "print(sorted(m for m in ('ray', 'dask', 'distributed') if m in sys.modules))"
    )
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


# -- refusals: before any Ray process starts ------------------------------------------------
@pytest.mark.parametrize("launch", [fit_on_ray, search_on_ray])
def test_ray_missing_names_the_pip_command(launch, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets without Ray
    with pytest.raises(ImportError, match=r'not installed .* pip install "ray\[train\]"'):
        launch(ray_jobs.build_stack, np.zeros((4, 8)), np.zeros(4))


def test_unreachable_cluster_says_how_to_start_one():
    assert not ray.is_initialized(), "another test left Ray connected"
    address = f"ray://127.0.0.1:{free_port()}"
    with pytest.raises(
        ConnectionError,
        match=r"No Ray cluster answers at address='ray://127\.0\.0\.1:\d+'.*ray start --head",
    ):
        fit_on_ray(ray_jobs.build_stack, np.zeros((4, 8)), np.zeros(4), address=address)
    with pytest.raises(ValueError, match=r"address='ray://head:port' is not a Ray address"):
        search_on_ray(ray_jobs.build_tuner, np.zeros((4, 8)), address="ray://head:port")
    assert not ray.is_initialized()


@requires_tensorflow()
def test_a_builder_that_cannot_ship_is_refused_with_what_to_pass():
    import tensorflow as tf

    dataset = tf.data.Dataset.range(3)  # a live object: no pickle can carry it

    def build(strategy):
        return dataset

    with pytest.raises(
        TypeError,
        match=r"build_fn=.*build.* cannot be shipped to Ray workers.*module-level function build_fn\(strategy\)",
    ):
        fit_on_ray(build, np.zeros((4, 8)), np.zeros(4))
    lock = threading.Lock()
    with pytest.raises(
        TypeError,
        match=r"build_tuner=.* cannot be shipped.*_thread\.lock.*module-level function build_tuner\(\)",
    ):
        search_on_ray(lambda: lock, np.zeros((4, 8)))
    with pytest.raises(ValueError, match=r"pass \['epochs'\] to fit_on_ray itself"):
        fit_on_ray(ray_jobs.build_stack, np.zeros((4, 8)), np.zeros(4), fit_kwargs={"epochs": 3})
    with pytest.raises(ValueError, match="num_workers must be a whole number >= 1; received 0"):
        fit_on_ray(ray_jobs.build_stack, np.zeros((4, 8)), np.zeros(4), num_workers=0)
    assert not ray.is_initialized()


def test_worker_shares_cover_every_global_batch_once():
    x = np.arange(10, dtype="float32")[:, None]
    shares = [
        [
            b.numpy().ravel().tolist()
            for b in worker_dataset(x, batch_size=4, worker=w, num_workers=2)
        ]
        for w in range(2)
    ]
    assert shares == [[[0, 1], [4, 5], [8]], [[2, 3], [6, 7], [9]]]
    with pytest.raises(ValueError, match="worker=2 must be in 0..1"):
        worker_dataset(x, batch_size=4, worker=2, num_workers=2)


# -- a local cluster -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray():
    env = {
        "PYTHONPATH": ROOT,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
        "KFUSE_QUICK": "1",
    }
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env}
    )
    yield
    ray.shutdown()


@requires_tensorflow()
@pytest.mark.slow
def test_fit_on_ray_matches_one_process(local_ray):
    x, y = ray_jobs.rows()
    with pytest.raises(
        ValueError, match=r"address='ray://elsewhere:10001', but this process is already connected"
    ):
        fit_on_ray(ray_jobs.build_stack, {"x": x}, y, address="ray://elsewhere:10001")
    result = fit_on_ray(
        ray_jobs.build_stack, {"x": x}, y, epochs=EPOCHS, batch_size=64, num_workers=2
    )
    assert result.num_workers == 2 and len(result.replica_digests) == 2
    assert len(set(result.replica_digests)) == 1  # both replicas: the same bytes
    losses = result.history["loss"]
    assert len(losses) == EPOCHS and losses[-1] < losses[0] - 0.05

    keras.utils.set_random_seed(0)  # fit_on_ray's seed: the same initial weights
    reference = ray_jobs.build_stack(None)
    initial = [keras.ops.convert_to_numpy(w) for w in reference.weights]
    history = reference.fit(
        worker_dataset({"x": x}, y, batch_size=64), epochs=EPOCHS, verbose=0, shuffle=False
    )
    trained = [keras.ops.convert_to_numpy(w) for w in reference.weights]
    ray_weights = [keras.ops.convert_to_numpy(w) for w in result.model.weights]
    assert len(ray_weights) == len(trained) > 0
    moved = max(float(np.abs(a - b).max()) for a, b in zip(trained, initial, strict=True))
    gap = max(float(np.abs(a - b).max()) for a, b in zip(ray_weights, trained, strict=True))
    assert moved > 0.05 and gap < 1e-5, (moved, gap)
    np.testing.assert_allclose(losses, history.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(
        result.model.predict({"x": x}, verbose=0), reference.predict({"x": x}, verbose=0), atol=1e-5
    )


@requires_tensorflow()
@pytest.mark.slow
def test_search_on_ray_runs_every_trial_once(local_ray, tmp_path):
    for seed, name in enumerate(("a", "b")):
        ray_jobs.saved_base(str(tmp_path / f"{name}.keras"), seed)
    x, y = ray_jobs.rows(192, seed=1)
    xv, yv = ray_jobs.rows(96, seed=2)
    build = functools.partial(ray_jobs.build_tuner, str(tmp_path), 3)
    result = search_on_ray(
        build, x, y, num_workers=2, epochs=1, batch_size=64, validation_data=(xv, yv), verbose=0
    )
    assert len(result.trials) == 3
    assert all(t["status"] == "COMPLETED" for t in result.trials.values())
    ran = Counter(tid for ids in result.trials_by_worker.values() for tid in ids)
    assert set(result.trials_by_worker) == {"tuner0", "tuner1"}
    assert set(ran) == set(result.trials) and set(ran.values()) == {1}
    best = max(result.trials, key=lambda tid: result.trials[tid]["score"])
    assert result.best_trial == best
    assert result.best_hyperparameters == result.trials[best]["hyperparameters"]
    scores = result.best_model.evaluate(xv, yv, verbose=0, return_dict=True)
    assert scores["accuracy"] == pytest.approx(result.trials[best]["score"], abs=1e-6)
    assert result.trials[best]["score"] > 0.5  # 3 classes: chance about 0.4 (the majority class)
