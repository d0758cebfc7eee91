"""Training step time of a fused MNIST-1D stack: one device vs MirroredStrategy over 2
logical CPU replicas, and XLA (jit_compile) on vs off.

The CPU is split into 2 logical devices before TensorFlow starts (on a GPU machine the
mirrored row uses the GPUs instead when there are several). Same model, data, global batch
and seed in every row; the median step time of the timed epochs after a warm-up epoch.
Both logical CPU devices share the same physical cores, so mirrored rows measure the
overhead of replication here, not a speed-up. XLA on CPU is slow for Conv1D (TF's default
CPU kernels use oneDNN, XLA's CPU convolutions do not): measured here, an MLP-only stack
steps ~15% faster with XLA, a CNN-only stack ~5x slower. XLA pays off on GPU/TPU.
XLA with several replicas is refused by `distributed_stack` (see its docstring).
"""

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kfuse import distribute  # noqa: E402

DEVICES = distribute.configure_logical_cpus(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kfuse  # noqa: E402
from kfuse.demo import build_cnn, build_mlp  # noqa: E402

QUICK = bool(os.environ.get("KFUSE_QUICK"))
BATCH = 256
STEPS = 10 if QUICK else 40
EPOCHS = 2 if QUICK else 4  # the first is the warm-up


class StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times, self.epoch = [], 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch > 0:
            self.times.append(time.perf_counter() - self.start)


def branches():
    return [
        kfuse.Branch(build_cnn(), name="cnn", inputs="signal"),
        kfuse.Branch(build_mlp(), name="mlp", inputs="signal"),
    ]


def measure(strategy, jit_compile):
    keras.utils.set_random_seed(0)
    try:
        model = distribute.distributed_stack(branches(), strategy=strategy, head=10, meta=(64,),
                                             jit_compile=jit_compile)
    except ValueError as error:
        return None, None, str(error).split(":")[0]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH * STEPS, 40)).astype("float32")
    y = rng.integers(0, 10, size=BATCH * STEPS)
    timer = StepTimer()
    history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, callbacks=[timer], verbose=0)
    step = statistics.median(timer.times)
    return model.distribute_strategy.num_replicas_in_sync, step, f"loss {history.history['loss'][-1]:.3f}"


def main():
    rows = []
    for name, strategy, jit in (
        ("one device", "default", False),
        ("one device", "default", True),
        ("mirrored", "mirrored", False),
        ("mirrored", "mirrored", True),
    ):
        replicas, step, note = measure(strategy, jit)
        rows.append((name, replicas, jit, step, note))
    base = rows[0][3]
    print(f"Fused stack (CNN + MLP branches, Dense(64) meta, 10 classes), global batch {BATCH}, "
          f"{STEPS} steps x {EPOCHS - 1} timed epochs; devices {DEVICES}")
    print("| setup | replicas | XLA | step (ms) | samples/s | vs one device, XLA off | note |")
    print("|---|---|---|---|---|---|---|")
    for name, replicas, jit, step, note in rows:
        if step is None:
            print(f"| {name} | 2 | {'on' if jit else 'off'} | - | - | - | refused: {note} |")
            continue
        print(f"| {name} | {replicas} | {'on' if jit else 'off'} | {step * 1e3:.1f} | "
              f"{BATCH / step:,.0f} | {base / step:.2f}x | {note} |")


if __name__ == "__main__":
    main()
