"""Streaming merge vs loading every model with Keras: peak RSS and time.

Four models of about 100 MB each (an MLP of 25 Dense(1000) layers, float32; quick mode:
small ones) are saved as .keras files. Each side runs in its own fresh subprocess:
- kfuse streaming: ``kfuse.merge.merge(paths, "linear")`` reads one tensor at a time from the
  files' model.weights.h5 (one model, the output, plus one tensor per input in memory);
- Keras: ``keras.saving.load_model`` on all four, numpy mean of ``get_weights()``,
  ``set_weights`` on the first.
Peak RSS (ru_maxrss) is reported above the process's RSS after importing Keras, and the two
outputs are checked equal.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
QUICK = os.environ.get("KFUSE_QUICK") == "1" or "--quick" in sys.argv
LAYERS, WIDTH = (4, 200) if QUICK else (25, 1000)
N_MODELS = 4


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def build(seed):
    import keras

    keras.utils.set_random_seed(seed)
    layers = [keras.Input((WIDTH,))] + [keras.layers.Dense(WIDTH) for _ in range(LAYERS)]
    return keras.Sequential(layers)


def side(name, paths, out):
    import keras
    import numpy as np

    base_rss = _current_mb()
    start = time.perf_counter()
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
        for name in ("kfuse", "keras"):
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

        same = np.allclose(np.load(os.path.join(tmp, "kfuse.npy")),
                           np.load(os.path.join(tmp, "keras.npy")), atol=1e-6)
    print(f"{N_MODELS} models x {params:,} params ({size_mb:.0f} MB .keras each), outputs equal: {same}")
    print("| side | time (s) | peak RSS (MB) | above import (MB) |")
    print("|---|---|---|---|")
    for name, label in (("kfuse", "kfuse streaming merge"), ("keras", "Keras load x4 + numpy mean")):
        r = results[name]
        print(f"| {label} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | {r['peak_mb'] - r['base_mb']:.0f} |")
    k, s = results["keras"], results["kfuse"]
    ratio = (k["peak_mb"] - k["base_mb"]) / max(s["peak_mb"] - s["base_mb"], 1)
    print(f"memory above import: Keras / kfuse = {ratio:.1f}x; time kfuse / Keras = "
          f"{s['seconds'] / k['seconds']:.2f}x")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
