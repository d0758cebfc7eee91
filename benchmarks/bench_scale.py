"""The Stacker's independent fits on each engine, side by side in one run (issue 36).

MNIST-1D (4,000 training rows, 1,000 test rows), the demo's CNN, GRU and MLP (`kfuse.demo`),
epochs 30 / 20 / 30, batch 100, Adam at 3e-3, `Stacker(cv=5, refit=True)`: 18 fits. Rows:

- `n_jobs=1`: today's default (two fold models of one base side by side in one traced epoch);
- threads: `n_jobs=2` (today's threads);
- processes: `joblib.parallel_config(backend="loky", n_jobs=2)` (2 local processes);
- Ray: a local cluster, `ray.init(num_cpus=2)`, `parallel_config(backend="ray")`;
- Dask: `LocalCluster(n_workers=2, threads_per_worker=1)`, `parallel_config(backend="dask")`.

Each engine is started (and TensorFlow imported in its workers) before its row is timed; the
start is printed apart. Every row must give the `n_jobs=1` test predictions bit for bit. The
per-job figures (seconds inside a job, the engine's wall time, data shipping) come from
`kfuse.engines.run.LAST_RUN`. Goal: processes or Ray at most 0.6x the `n_jobs=1` time.
`KFUSE_QUICK=1`: 600 rows, 2 epochs, 3 folds (about a minute); `KFUSE_BENCH_ONLY=seq,threads,
processes,ray,dask` picks rows.
"""

import contextlib
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

import joblib  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import kfuse  # noqa: E402
from kfuse.datasets.mnist1d import load_mnist1d  # noqa: E402
from kfuse.demo import build_cnn, build_gru, build_mlp  # noqa: E402
from kfuse.engines import run as engine_run  # noqa: E402

QUICK = bool(os.environ.get("KFUSE_QUICK"))
ROWS = 600 if QUICK else None
EPOCHS = {"cnn": 2, "gru": 2, "mlp": 2} if QUICK else {"cnn": 30, "gru": 20, "mlp": 30}
FOLDS = 3 if QUICK else 5
BATCH, LEARNING_RATE, SEED = 100, 3e-3, 0
BUILDERS = {"cnn": build_cnn, "gru": build_gru, "mlp": build_mlp}
ONLY = {v for v in os.environ.get("KFUSE_BENCH_ONLY", "").split(",") if v}


def stacker(n_jobs=None):
    keras.utils.set_random_seed(SEED)
    fit = {"batch_size": BATCH, "learning_rate": LEARNING_RATE}
    branches = [kfuse.Branch(build(), name=name, inputs="signal", fit={**fit, "epochs": EPOCHS[name]})
                for name, build in BUILDERS.items()]
    return kfuse.Stacker(branches, head=10, cv=FOLDS, refit=True, seed=SEED, verbose=0, n_jobs=n_jobs)


def warm(kind):
    """Start the engine and import kfuse in its workers; returns (context factory, close)."""
    if kind == "processes":
        from joblib.externals.loky import get_reusable_executor

        pool = get_reusable_executor(max_workers=2, reuse=True)
        list(pool.map(_import_kfuse, range(2)))
        return lambda: joblib.parallel_config(backend="loky", n_jobs=2), lambda: None
    if kind == "ray":
        import ray
        from ray.util.joblib import register_ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}})
        register_ray()
        task = ray.remote(num_cpus=1)(_import_kfuse)
        ray.get([task.remote(i) for i in range(2)])
        return lambda: joblib.parallel_config(backend="ray", n_jobs=2), ray.shutdown
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
    client = Client(cluster)
    client.run(_import_kfuse, 0)

    def close():
        client.close()
        cluster.close()

    return lambda: joblib.parallel_config(backend="dask", n_jobs=2, client=client), close


def _import_kfuse(_):
    import kfuse.stacking.remote  # noqa: F401 (TensorFlow and kfuse imported in this worker)

    return os.getpid()


def timed(make, context):
    engine_run.LAST_RUN.clear()
    estimator = make()
    start = time.perf_counter()
    with context(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit({"signal": X}, Y)
    return time.perf_counter() - start, estimator, dict(engine_run.LAST_RUN)


def main():
    global X, Y
    (X, Y), (x_test, y_test) = load_mnist1d()
    if ROWS:
        X, Y = X[:ROWS], Y[:ROWS]
    rows = [("seq", "n_jobs=1 (this process)", None, lambda: stacker()),
            ("threads", "threads, n_jobs=2", None, lambda: stacker(2)),
            ("processes", "processes (loky), 2 workers", "processes", stacker),
            ("ray", "Ray, local cluster, 2 CPUs", "ray", stacker),
            ("dask", "Dask, LocalCluster, 2 workers", "dask", stacker)]
    results, reference = [], None
    for key, name, kind, make in rows:
        if ONLY and key not in ONLY and key != "seq":
            continue
        start = time.perf_counter()
        context, close = warm(kind) if kind else (contextlib.nullcontext, lambda: None)
        started = time.perf_counter() - start
        seconds, fitted, stats = timed(make, context)
        close()
        proba = fitted.predict_proba({"signal": x_test})
        reference = proba if reference is None else reference
        accuracy = float(np.mean(proba.argmax(-1) == y_test))
        results.append((name, started, seconds, accuracy, bool(np.array_equal(proba, reference)), stats))
        print(f"{name}: start {started:.1f} s, fit {seconds:.1f} s, test accuracy {accuracy:.4f}", flush=True)
    base = results[0][2]
    print(f"\nMNIST-1D, {len(Y)} rows, epochs {EPOCHS}, batch {BATCH}, Stacker(cv={FOLDS}, refit=True): "
          f"{3 * (FOLDS + 1)} fits; {os.cpu_count()} cores")
    print("| engine | start s | fit s | vs n_jobs=1 | test acc | same predictions | jobs | s per job (in worker) | engine wall s | shipping + pool s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, started, seconds, accuracy, same, stats in results:
        per_job = f"{stats['jobs'] / stats['count']:.2f}" if stats else "-"
        wall = f"{stats['wall']:.1f}" if stats else "-"
        ship = f"{stats['start']:.2f}" if stats else "-"
        count = stats.get("count", "-") if stats else "-"
        print(f"| {name} | {started:.1f} | {seconds:.1f} | {seconds / base:.2f}x | {accuracy:.4f} | {same} | "
              f"{count} | {per_job} | {wall} | {ship} |")
    print("goal: processes or Ray <= 0.60x the n_jobs=1 fit time, the same predictions")


if __name__ == "__main__":
    main()
