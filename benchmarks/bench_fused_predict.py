"""Fused graph `predict` vs each base's `predict` combined in numpy (MNIST-1D bases).

Same data, same batch size, warmed up; median of repeats. Prints the ratio
fused / separate (goal <= 1.0, aim 0.7) and the cost of fusion + meta + head relative to
the bases alone (a probe graph holding just the branches).

Threads: on a 2-core CPU, TensorFlow's default inter-op pool runs the three branches at
once while each op also uses every core, and the oversubscription made the fused graph
1.19x slower than three separate predicts here. With one inter-op thread (each op still
uses all cores) it was 0.82x. The script uses `KFUSE_BENCH_INTEROP` inter-op threads
(default 1; 0 = TensorFlow's default) for both setups alike.
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kfuse  # noqa: E402
from kfuse.demo import BASES  # noqa: E402

ROWS = int(os.environ.get("KFUSE_BENCH_ROWS", 20000))
BATCH = 1024
REPEATS = 5


def timed(*fns):
    """Median seconds per function, measured in interleaved rounds so drift hits all alike."""
    for fn in fns:
        fn()  # warm-up (tracing, compilation)
    times = [[] for _ in fns]
    for _ in range(REPEATS):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main():
    interop = int(os.environ.get("KFUSE_BENCH_INTEROP", 1))
    if interop and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_inter_op_parallelism_threads(interop)
    print(f"inter-op threads: {interop or 'TensorFlow default'}")
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(ROWS, 40)).astype("float32")
    bases = {name: build() for name, build in BASES.items()}
    branches = [
        kfuse.Branch(model, name=name, inputs="signal", trainable=False, output="probabilities")
        for name, model in bases.items()
    ]
    fused = kfuse.stack(branches, fusion="concat", meta=(64,), head=10)
    head_weights = [layer.get_weights() for layer in (fused.get_layer("meta_dense_0"), fused.get_layer("logits"))]
    probe = keras.Model(fused.inputs, [fused.branch_tensor(n) for n in fused.branch_names])

    def separate():
        outs = [model.predict(x, batch_size=BATCH, verbose=0) for model in bases.values()]
        (w1, b1), (w2, b2) = head_weights
        hidden = np.maximum(np.concatenate(outs, axis=-1) @ w1 + b1, 0)
        return hidden @ w2 + b2

    def fused_predict():
        return fused.predict(x, batch_size=BATCH, verbose=0)

    def bases_only():
        return probe.predict(x, batch_size=BATCH, verbose=0)

    np.testing.assert_allclose(separate(), fused_predict(), atol=1e-4)  # same computation
    t_sep, t_fused, t_bases = timed(separate, fused_predict, bases_only)
    print(f"rows={ROWS} batch={BATCH} repeats={REPEATS} (median seconds)")
    print("| setup | seconds | ratio |")
    print("|---|---|---|")
    print(f"| 3 base predicts + numpy fusion/head | {t_sep:.3f} | 1.00 |")
    print(f"| kfuse fused graph predict | {t_fused:.3f} | {t_fused / t_sep:.2f} |")
    print(f"| branches only (no fusion/meta/head) | {t_bases:.3f} | {t_bases / t_sep:.2f} |")
    print(f"fused / separate = {t_fused / t_sep:.2f}x (goal <= 1.0x, aim 0.7x)")
    print(f"fusion + meta + head cost = {(t_fused - t_bases) / t_bases:+.1%} of the branches' time")


if __name__ == "__main__":
    main()
