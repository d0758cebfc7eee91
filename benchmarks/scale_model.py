"""How the Stacker's independent fits would scale on 1-16 workers: a model on paper from
costs measured here.

Measured on this machine (the Stacker benchmark's settings: MNIST-1D, bases CNN / GRU /
MLP, cv=5, so one job fits one base on 3,200 rows, batch 100, 60 epochs, and predicts
its 800 held-out rows):

- c, compute per job: one epoch timed after the first (traced) one, times 60;
- o, fixed cost per job: building the model, the first epoch's tracing, the first
  predict (paid by every job, in-process or not);
- r, engine round trip per job: a Ray task that returns a job's result (weights and
  held-out predictions, about 0.1 MB) to the driver, after warm-up;
- S, worker start: a fresh Python process importing TensorFlow, Keras and kfuse (the
  workers start together, so it is paid once);
- D, data transfer to one worker: the training arrays pickled through a pipe to a
  spawned process (sent once per worker).

The model, for J jobs on W workers (one core or GPU each, as on a cluster; this 2-core
machine runs 2 at a time):

    T(J, W) = S + W * D + ceil(J / W) * (c + o + r)        in-process: T_1 = J * (c + o)

ceil(J / W) waves, each as long as one job (the jobs are alike); the driver sends the
data to the workers one after the other (W * D: an upper bound; Ray's object store
spreads it between nodes). Speed-up = T_1 / T(J, W).

Usage: python benchmarks/scale_model.py (KFUSE_QUICK=1: 400 rows, 2 epochs measured,
no Ray: a smoke run whose numbers only show it runs). Never load-free here: the machine
is shared, so the measured costs are upper bounds.
"""

import math
import multiprocessing
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kfuse.datasets.mnist1d import load_mnist1d  # noqa: E402
from kfuse.demo import build_cnn, build_gru, build_mlp  # noqa: E402

QUICK = bool(os.environ.get("KFUSE_QUICK"))
ROWS = 400 if QUICK else 3200  # one fold's training rows (4,000 x 4/5)
HELD_OUT = 100 if QUICK else 800
EPOCHS = 60  # the Stacker benchmark's epochs per fit
BATCH = 100
JOBS = (8, 32, 128)
WORKERS = (1, 2, 4, 8, 16)
BUILDERS = {"cnn": build_cnn, "gru": build_gru, "mlp": build_mlp}


def predict_wall_time(jobs, workers, compute_s, job_overhead_s, round_trip_s, start_s, transfer_s):
    """T(J, W) of the module docstring, in seconds."""
    waves = math.ceil(jobs / workers)
    return start_s + workers * transfer_s + waves * (compute_s + job_overhead_s + round_trip_s)


def time_job(build, x, y, x_held):
    """(compute per epoch, fixed cost per job) of one fold fit of `build`'s base."""
    start = time.perf_counter()
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    built = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0)
    first = time.perf_counter()
    model.fit(x, y, epochs=2, batch_size=BATCH, verbose=0)
    steady = (time.perf_counter() - first) / 2
    predict_start = time.perf_counter()
    model.predict(x_held, batch_size=BATCH, verbose=0)
    predicted = time.perf_counter() - predict_start
    keras.backend.clear_session()
    return steady, (built - start) + (first - built - steady) + predicted


def time_worker_start(repeats=2):
    """Seconds for a fresh Python to import TensorFlow, Keras and kfuse (the fastest of `repeats`)."""
    code = "import tensorflow, keras, kfuse"
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", code],
            check=True,
            cwd=root,
            env=dict(os.environ, CUDA_VISIBLE_DEVICES=""),
        )
        times.append(time.perf_counter() - start)
    return min(times)


def _echo(connection):
    while True:
        message = connection.recv()
        if message is None:
            return
        connection.send(len(message))


def time_transfer(arrays, repeats=3):
    """Seconds to pickle `arrays` to a spawned process and hear back (the fastest of `repeats`)."""
    context = multiprocessing.get_context("spawn")
    here, there = context.Pipe()
    child = context.Process(target=_echo, args=(there,))
    child.start()
    here.send([0])  # the child is up before the clock starts
    here.recv()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        here.send(arrays)
        here.recv()
        times.append(time.perf_counter() - start)
    here.send(None)
    child.join()
    return min(times)


def time_ray_round_trip(result_bytes, calls=20):
    """Seconds per Ray task returning `result_bytes` to the driver (after warm-up)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        job = ray.remote(lambda n: np.zeros(n // 4, "float32"))
        ray.get([job.remote(result_bytes) for _ in range(4)])  # workers up
        start = time.perf_counter()
        for _ in range(calls):
            ray.get(job.remote(result_bytes))
        return (time.perf_counter() - start) / calls
    finally:
        ray.shutdown()


def measure():
    (x, y), _ = load_mnist1d()
    x_fit, y_fit, x_held = x[:ROWS], y[:ROWS], x[ROWS : ROWS + HELD_OUT]
    per_base = {name: time_job(build, x_fit, y_fit, x_held) for name, build in BUILDERS.items()}
    epoch_s = float(np.mean([e for e, _ in per_base.values()]))
    overhead_s = float(np.mean([o for _, o in per_base.values()]))
    weights = sum(build().count_params() for build in BUILDERS.values()) / len(BUILDERS)
    result_bytes = int(4 * weights + 4 * 10 * HELD_OUT)
    return {
        "per_base": per_base,
        "compute_s": epoch_s * EPOCHS,
        "job_overhead_s": overhead_s,
        "round_trip_s": 0.0 if QUICK else time_ray_round_trip(result_bytes),
        "start_s": time_worker_start(1 if QUICK else 2),
        "transfer_s": time_transfer({"x": x[: ROWS + HELD_OUT], "y": y[: ROWS + HELD_OUT]}),
        "result_bytes": result_bytes,
    }


def main():
    costs = measure()
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for name, (epoch_s, overhead_s) in costs["per_base"].items():
        print(f"  {name}: {epoch_s:.2f} s per epoch, {overhead_s:.2f} s fixed per job")
    print(
        f"c = {costs['compute_s']:.1f} s ({EPOCHS} epochs), o = {costs['job_overhead_s']:.2f} s, "
        f"r = {costs['round_trip_s'] * 1000:.1f} ms ({costs['result_bytes'] / 1e6:.2f} MB back), "
        f"S = {costs['start_s']:.1f} s, D = {costs['transfer_s'] * 1000:.1f} ms"
    )
    args = {
        k: costs[k]
        for k in ("compute_s", "job_overhead_s", "round_trip_s", "start_s", "transfer_s")
    }
    print("\nT(J, W) = S + W*D + ceil(J/W)*(c + o + r); in-process T_1 = J*(c + o)\n")
    print(
        "| jobs | in-process | " + " | ".join(f"{w} worker{'s' * (w > 1)}" for w in WORKERS) + " |"
    )
    print("|---" * (len(WORKERS) + 2) + "|")
    for jobs in JOBS:
        serial = jobs * (costs["compute_s"] + costs["job_overhead_s"])
        cells = []
        for workers in WORKERS:
            wall = predict_wall_time(jobs, workers, **args)
            cells.append(f"{_clock(wall)} ({serial / wall:.1f}x)")
        print(f"| {jobs} | {_clock(serial)} | " + " | ".join(cells) + " |")


def _clock(seconds):
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{rest:02d}s"


if __name__ == "__main__":
    main()
