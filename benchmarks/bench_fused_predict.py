"""Fused graph `predict` vs each base's `predict` combined in numpy (MNIST-1D bases).

Same data, same batch size, warmed up; median of repeats, the setups run in interleaved
rounds whose order alternates (forward, then reversed), so drift and the machine's other
load hit them alike. Prints, at batch 256 and 2048, the ratio fused / separate (goal
<= 0.7x) and the knobs measured beside it:

- `kfuse predict`: `FusedModel.predict` as users get it. On numpy arrays it runs the
  batches through one cached traced function over the whole graph
  (`kfuse.trainers.predict_loop.predict_in_memory`), not Keras's `tf.data` predict loop; the
  output is `keras.Model.predict`'s, bit for bit (asserted below).
- `Keras predict on the fused graph`: `keras.Model.predict(fused, ...)`, the path
  `FusedModel.predict` took before (0.77-0.82x of separate at batch 1024).
- `XLA`: the same in-memory loop with `fused.jit_compile = True`.
- `one chunk`: the in-memory loop with the whole set as one batch (big-batch chunking;
  equal to the others within float tolerance, not bit for bit).
- `branches only`: a probe graph of the branches alone (no fusion, meta, head).

Threads: `KFUSE_BENCH_INTEROP` inter-op threads (default 1; 0 = TensorFlow's default)
for every setup alike (a process-wide setting).

Measured here (2 cores shared with three other engineers' jobs, so +-15% between runs;
10,000 rows, 5 repeats), ratio to the separate predicts:

| knob | batch 256 | batch 2048 |
|---|---|---|
| Keras predict on the fused graph (before) | 0.65 (0.68-0.82 in earlier runs) | 0.99 (0.57-0.85) |
| **kfuse predict (in-memory loop, after)** | **0.50** | **0.56** |
| in-memory loop + XLA (`jit_compile`) | 0.73 | 1.02 |
| in-memory loop, the whole set as one batch | 0.43 | 0.71 |
| branches only (no fusion, meta, head) | 0.46 | 0.67 |
| latest run, kfuse predict (Keras's loop 0.77 / 0.77; XLA 0.76 / 0.56; one batch 0.55 / 0.55) | **0.66** | **0.68** |

Inter-op threads (a probe script, the in-memory loop vs separate, 10,000 rows):
1 thread 0.41-0.61x, TensorFlow's default 0.37-0.57x, 2 threads with 1 intra-op thread
0.66-0.71x. XLA on CPU speeds the MLP up (2x) but slows the GRU's while loop (1.6x), a
net loss here. The in-memory loop's gain over Keras's predict holds at batch 2048 too,
where Keras's per-batch overhead is small; our reading (not profiled): Keras's `tf.data` threads
(prefetch, slicing) take CPU from the model's own arithmetic on 2 busy cores.
`KFUSE_QUICK=1`: 1,000 rows, one repeat.
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kfuse  # noqa: E402
from kfuse.demo import BASES  # noqa: E402
from kfuse.trainers.predict_loop import predict_in_memory  # noqa: E402

QUICK = bool(os.environ.get("KFUSE_QUICK"))
ROWS = int(os.environ.get("KFUSE_BENCH_ROWS", 1000 if QUICK else 10000))
BATCHES = [int(b) for b in os.environ.get("KFUSE_BENCH_BATCHES", "256,2048").split(",")]
REPEATS = 1 if QUICK else int(os.environ.get("KFUSE_BENCH_REPEATS", 5))


def timed(fns):
    """Median seconds per function (a dict), in interleaved rounds of alternating order."""
    for fn in fns.values():
        fn()  # warm-up (tracing, compilation)
    times = {name: [] for name in fns}
    for round_ in range(REPEATS):
        order = list(fns) if round_ % 2 == 0 else list(fns)[::-1]
        for name in order:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main():
    interop = int(os.environ.get("KFUSE_BENCH_INTEROP", 1))
    if interop and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_inter_op_parallelism_threads(interop)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")  # Keras's own predict retraces on the last batch
    print(f"inter-op threads: {interop or 'TensorFlow default'}; {os.cpu_count()} CPUs")
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(ROWS, 40)).astype("float32")
    bases = {name: build() for name, build in BASES.items()}
    branches = [
        kfuse.Branch(model, name=name, inputs="signal", trainable=False, output="probabilities")
        for name, model in bases.items()
    ]
    fused = kfuse.stack(branches, fusion="concat", meta=(64,), head=10)
    fused_xla = kfuse.stack(branches, fusion="concat", meta=(64,), head=10)
    fused_xla.set_weights(fused.get_weights())
    fused_xla.jit_compile = True
    head_weights = [layer.get_weights() for layer in (fused.get_layer("meta_dense_0"), fused.get_layer("logits"))]
    probe = keras.Model(fused.inputs, [fused.branch_tensor(n) for n in fused.branch_names])
    summary = {}
    for batch in BATCHES:

        def separate(batch=batch):
            outs = [model.predict(x, batch_size=batch, verbose=0) for model in bases.values()]
            (w1, b1), (w2, b2) = head_weights
            hidden = np.maximum(np.concatenate(outs, axis=-1) @ w1 + b1, 0)
            return hidden @ w2 + b2

        setups = {
            "3 base predicts + numpy fusion/head": separate,
            "kfuse predict (in-memory loop)": lambda batch=batch: fused.predict(x, batch_size=batch, verbose=0),
            "Keras predict on the fused graph (before)": lambda batch=batch: keras.Model.predict(
                fused, {"signal": x}, batch_size=batch, verbose=0),
            "in-memory loop + XLA": lambda batch=batch: fused_xla.predict(x, batch_size=batch, verbose=0),
            "in-memory loop, one chunk": lambda: fused.predict(x, batch_size=ROWS, verbose=0),
            "branches only (no fusion/meta/head)": lambda batch=batch: predict_in_memory(
                probe, {"signal": x}, batch_size=batch, verbose=0),
        }
        outputs = {name: fn() for name, fn in setups.items() if name.startswith(("3 ", "kfuse", "Keras"))}
        kfuse_out = outputs["kfuse predict (in-memory loop)"]
        assert np.array_equal(kfuse_out, outputs["Keras predict on the fused graph (before)"]), "not bit for bit"
        np.testing.assert_allclose(outputs["3 base predicts + numpy fusion/head"], kfuse_out, atol=1e-4)
        np.testing.assert_allclose(setups["in-memory loop + XLA"](), kfuse_out, atol=1e-4)
        np.testing.assert_allclose(setups["in-memory loop, one chunk"](), kfuse_out, atol=1e-4)
        times = timed(setups)
        base = times["3 base predicts + numpy fusion/head"]
        print()
        print(f"rows={ROWS} batch={batch} repeats={REPEATS} (median seconds)")
        print("| setup | seconds | ratio |")
        print("|---|---|---|")
        for name, seconds in times.items():
            print(f"| {name} | {seconds:.3f} | {seconds / base:.2f} |")
        summary[batch] = times["kfuse predict (in-memory loop)"] / base
    print()
    for batch, ratio in summary.items():
        print(f"batch {batch}: kfuse fused predict / separate predicts = {ratio:.2f}x (goal <= 0.7x)")


if __name__ == "__main__":
    main()
