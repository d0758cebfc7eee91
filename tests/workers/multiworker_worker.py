"""One worker of tests/distribute/test_multiworker.py: trains a small stack under MWMS.

Usage (TF_CONFIG set by the test): python multiworker_worker.py INDEX OUT_DIR
Writes OUT_DIR/worker<INDEX>.npz: final weights, local loss before and after, history, and
the weights of the worker's own (unseeded) base.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kfuse  # noqa: E402


def local_data(index, n=256):
    """Different rows on every worker, one labelling rule for all."""
    rng = np.random.default_rng(100 + index)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x[:, :3] @ np.array([1.0, -1.0, 0.5]) > 0).astype("int64") + (x[:, 3] > 1.0)
    return x, y


def cross_entropy(model, x, y):
    logits = keras.ops.convert_to_numpy(model({"x": x}, training=False))
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def main(index, out_dir):
    strategy = kfuse.distribute.get_strategy("multi_worker")
    # a base model built OUTSIDE the strategy scope, UNSEEDED: each worker's own random
    # weights, which stack() copies and must broadcast from the chief
    base = keras.Sequential(
        [keras.Input((8,), name="x"), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)],
        name="base",
    )
    base_weights = np.concatenate([keras.ops.convert_to_numpy(w).ravel() for w in base.weights])
    branches = [
        kfuse.Branch(base, name="base", inputs="x"),
        kfuse.Branch(lambda t: keras.layers.Dense(8, activation="relu")(t), name="fresh", inputs="x"),
    ]
    model = kfuse.stack(branches, fusion="concat", head=3, strategy=strategy,
                        optimizer=keras.optimizers.SGD(0.2))
    x, y = local_data(index)
    before = cross_entropy(model, x, y)
    dataset = kfuse.distribute.local_dataset({"x": x}, y, batch_size=64)
    history = model.fit(dataset, epochs=4, verbose=0)
    after = cross_entropy(model, x, y)
    np.savez(
        os.path.join(out_dir, f"worker{index}.npz"),
        *[keras.ops.convert_to_numpy(w) for w in model.weights],
        before=before,
        after=after,
        history=np.array(history.history["loss"]),
        replicas=strategy.num_replicas_in_sync,
        base_weights=base_weights,
    )
    print(f"worker {index}: loss {before:.4f} -> {after:.4f}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
