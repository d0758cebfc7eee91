"""Streaming merges in one model's memory: N = 4 and N = 8 ``.keras`` files of ~100 MB.

Models: bench_merge's MLP of 25 Dense(1000) layers (25M float32 parameters, ~96 MB per
file; quick mode, KFUSE_QUICK=1: 4 x Dense(200)). Every side runs in its own fresh
subprocess, measures its RSS after importing Keras and kfuse (which imports TensorFlow),
resets the kernel's peak (VmHWM) there, merges, writes the merged ``.keras`` file and
reports its peak RSS above that baseline:
- kfuse streamed, ``merge_to_file``: one tensor per input read from each file's
  ``model.weights.h5`` (h5py), each merged tensor written to the output's; for ``linear``
  (N models), ``ties`` and ``della_linear`` (a base plus N - 1 models);
- Keras: ``keras.saving.load_model`` x N, numpy mean of ``get_weights()``, ``set_weights``
  and ``save``.
The streamed linear output is checked equal to Keras's (to 1e-6). Goal: the streamed peak
above the baseline at most 1.5 x one model's size.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_merge as bm  # noqa: E402  (build, the RSS helpers and the model sizes)

COUNTS = (4, 8)
METHODS = {"linear": {}, "ties": {"density": 0.5}, "della_linear": {"density": 0.5}}


def side(name, paths, out):
    """One side in this (fresh) process; prints ``{"seconds", "above_mb"}``."""
    import keras
    import numpy as np

    import kfuse.merge  # noqa: F401  (part of every side's baseline)

    base_mb = bm._current_mb()
    start = time.perf_counter()
    if name == "keras":
        models = [keras.saving.load_model(p, compile=False, safe_mode=True) for p in paths]
        mean = [np.mean(ws, axis=0) for ws in zip(*(m.get_weights() for m in models),
                                                  strict=True)]
        models[0].set_weights(mean)
        models[0].save(out)
    else:
        from kfuse.merge import merge_to_file

        base = None if name == "linear" else paths[0]
        models = paths if name == "linear" else paths[1:]
        merge_to_file(models, name, out, base=base, **METHODS[name])
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "above_mb": bm._rss_mb() - base_mb}))


def _run(name, paths, out):
    code = (f"import sys; sys.path.insert(0, {HERE!r}); import bench_merge_memory as b; "
            f"b.side({name!r}, {paths!r}, {out!r})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    if proc.returncode:
        raise RuntimeError(f"{name}: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _equal(a, b):
    import keras
    import numpy as np

    wa = keras.saving.load_model(a, compile=False).get_weights()
    wb = keras.saving.load_model(b, compile=False).get_weights()
    return all(np.allclose(x, y, rtol=0, atol=1e-6) for x, y in zip(wa, wb, strict=True))


def main():
    rows, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for seed in range(max(COUNTS)):
            paths.append(os.path.join(tmp, f"m{seed}.keras"))
            bm.build(seed).save(paths[-1])
        size_mb = os.path.getsize(paths[0]) / 2**20
        for n in COUNTS:
            results = {}
            for name in ("keras", *METHODS):
                results[name] = _run(name, paths[:n], os.path.join(tmp, f"{name}{n}.keras"))
            same = _equal(os.path.join(tmp, f"keras{n}.keras"), os.path.join(tmp, f"linear{n}.keras"))
            ok = ok and same
            for name, r in results.items():
                ratio = r["above_mb"] / size_mb
                ok = ok and (name == "keras" or bm.QUICK or ratio <= 1.5)
                rows.append((n, name, r["seconds"], r["above_mb"], ratio, same))
            for name in (f"keras{n}", *(f"{m}{n}" for m in METHODS)):
                os.remove(os.path.join(tmp, f"{name}.keras"))
    print(f"files: {bm.LAYERS} x Dense({bm.WIDTH}), {size_mb:.0f} MB each"
          + (" (quick mode: tiny, the ratios mean little)" if bm.QUICK else ""))
    print("| N | side | time (s) | peak RSS above import (MB) | x one model | linear = Keras |")
    print("|---|---|---|---|---|---|")
    for n, name, seconds, above, ratio, same in rows:
        label = "Keras load_model x N + mean + save" if name == "keras" else \
            f"kfuse merge_to_file {name}"
        print(f"| {n} | {label} | {seconds:.1f} | {above:.0f} | {ratio:.2f} | {same} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
