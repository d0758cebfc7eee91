"""Streaming merge vs loading every model with Keras: peak RSS and time.

Four models of about 100 MB each (an MLP of 25 Dense(1000) layers, float32; quick mode:
small ones) are saved as .keras files. Each side runs in its own fresh subprocess:
- kfuse file to file: ``kfuse.merge.merge_to_file(paths, "linear", out)`` reads one tensor at
  a time from the files' model.weights.h5 and writes each merged tensor to the output file (no
  model's weights in memory: one tensor per input plus the merged one);
- kfuse to a model: ``kfuse.merge.merge(paths, "linear")``, the same reads into the variables
  of a new model (one model plus one tensor per input);
- Keras: ``keras.saving.load_model`` on all four, numpy mean of ``get_weights()``,
  ``set_weights`` on the first.
Peak RSS (VmHWM, reset after the imports) is reported above the process's RSS after importing Keras and kfuse
(which imports TensorFlow) on every side, and the two
outputs are checked equal.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
QUICK = os.environ.get("KFUSE_QUICK") == "1" or "--quick" in sys.argv
LAYERS, WIDTH = (4, 200) if QUICK else (25, 1000)
N_MODELS = 4


def _status_mb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return 0.0


def _current_mb():
    """RSS now; also resets the kernel's peak (VmHWM), so ``_rss_mb`` measures from here:
    importing TensorFlow peaks well above where it settles."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_mb("VmRSS")


def _rss_mb():
    return _status_mb("VmHWM")


def build(seed):
    import keras

    keras.utils.set_random_seed(seed)
    layers = [keras.Input((WIDTH,))] + [keras.layers.Dense(WIDTH) for _ in range(LAYERS)]
    return keras.Sequential(layers)


def side(name, paths, out):
    import keras
    import numpy as np

    import kfuse.merge  # noqa: F401  (kfuse imports TensorFlow: part of every side's baseline)

    base_rss = _current_mb()
    start = time.perf_counter()
    if name == "kfuse_file":
        from kfuse.merge import merge_to_file

        written = merge_to_file(paths, "linear", out + ".keras")
        seconds, peak = time.perf_counter() - start, _rss_mb()
        model = keras.saving.load_model(written, compile=False, safe_mode=True)
        np.save(out, model.get_weights()[0])
        print(json.dumps({"seconds": seconds, "peak_mb": peak, "base_mb": base_rss}))
        return
    if name == "kfuse":
        from kfuse.merge import merge

        model = merge(paths, "linear")
    else:
        models = [keras.saving.load_model(p, compile=False, safe_mode=True) for p in paths]
        mean = [np.mean(ws, axis=0) for ws in zip(*(m.get_weights() for m in models), strict=False)]
        model = models[0]
        model.set_weights(mean)
    seconds = time.perf_counter() - start
    peak = _rss_mb()
    np.save(out, model.get_weights()[0])
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "base_mb": base_rss}))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for seed in range(N_MODELS):
            m = build(seed)
            paths.append(os.path.join(tmp, f"m{seed}.keras"))
            m.save(paths[-1])
        size_mb = os.path.getsize(paths[0]) / 2**20
        params = m.count_params()
        results = {}
        for name in ("kfuse_file", "kfuse", "keras"):
            out = os.path.join(tmp, f"{name}.npy")
            code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r}); "
                    f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
                    f"import bench_merge as b; b.side({name!r}, {paths!r}, {out!r})")
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
            if proc.returncode:
                print(proc.stderr[-3000:])
                return 1
            results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        import numpy as np

        keras_w0 = np.load(os.path.join(tmp, "keras.npy"))
        same = all(np.allclose(np.load(os.path.join(tmp, f"{n}.npy")), keras_w0, atol=1e-6)
                   for n in ("kfuse", "kfuse_file"))
    print(f"{N_MODELS} models x {params:,} params ({size_mb:.0f} MB .keras each), outputs equal: {same}")
    print("| side | time (s) | peak RSS (MB) | above import (MB) |")
    print("|---|---|---|---|")
    for name, label in (("kfuse_file", "kfuse `merge_to_file` (file to file)"),
                        ("kfuse", "kfuse `merge` (files to a model)"),
                        ("keras", "Keras load x4 + numpy mean")):
        r = results[name]
        print(f"| {label} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | {r['peak_mb'] - r['base_mb']:.0f} |")
    k = results["keras"]
    for name in ("kfuse_file", "kfuse"):
        s = results[name]
        above = s["peak_mb"] - s["base_mb"]
        print(f"{name}: memory above import {above:.0f} MB = {above / size_mb:.2f} x one model "
              f"({size_mb:.0f} MB); Keras / {name} = "
              f"{(k['peak_mb'] - k['base_mb']) / max(above, 1):.1f}x; time {name} / Keras = "
              f"{s['seconds'] / k['seconds']:.2f}x")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
