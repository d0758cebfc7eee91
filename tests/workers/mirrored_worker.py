"""Run by tests/distribute/test_distribute.py in its own process: the CPU is split into 2 logical
devices before TensorFlow starts, which the main pytest process can no longer do.

Trains the same stack on the same data and seed on one device and under
MirroredStrategy over the 2 logical CPUs (also with XLA), and prints one JSON line.
"""

import json
import os
import sys
import tempfile
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import kfuse  # noqa: E402
from kfuse import distribute  # noqa: E402

DEVICES = distribute.configure_logical_cpus(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64") + (x[:, 2] > 0.5)
    return x, y


def make_base():
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [keras.Input((8,), name="x"), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)],
        name="base",
    )


BASE = make_base()  # built OUTSIDE every strategy scope


def branches():
    return [
        kfuse.Branch(BASE, name="base", inputs="x"),
        kfuse.Branch(lambda t: keras.layers.Dense(8, activation="relu")(t), name="fresh", inputs="x"),
    ]


def train(strategy, jit_compile=False):
    keras.utils.set_random_seed(0)
    model = distribute.distributed_stack(
        branches(), strategy=strategy, head=3, meta=(8,), optimizer=keras.optimizers.SGD(0.1),
        jit_compile=jit_compile,
    )
    x, y = data()
    history = model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    weights = [keras.ops.convert_to_numpy(w) for w in model.weights]
    replicas = model.distribute_strategy.num_replicas_in_sync
    mirrored = all(isinstance(getattr(w, "value", w), tf.distribute.DistributedValues) for w in model.weights)
    prediction = model.predict(x[:16], verbose=0)
    return weights, history.history["loss"], replicas, mirrored, prediction


def recompile_outside_scope():
    """stack(strategy=s), then compile and fit OUTSIDE s.scope(): the model keeps s."""
    strategy = kfuse.distribute.strategy.get_strategy("mirrored")  # the one train("mirrored") used
    model = kfuse.stack(branches(), strategy=strategy, head=3, meta=(8,))
    model.compile(  # the optimizer is named, so compile creates its variables (in s's scope)
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    x, y = data()
    history = model.fit(x, y, batch_size=32, epochs=3, verbose=0)
    optimizer_mirrored = all(
        isinstance(getattr(v, "value", v), tf.distribute.DistributedValues) for v in model.optimizer.variables
    )
    return {
        "same_strategy": model.distribute_strategy is strategy,
        "loss": history.history["loss"],
        "optimizer_mirrored": optimizer_mirrored,
        "evaluate": float(model.evaluate(x, y, verbose=0)[0]),
    }


def stacker_under_mirrored(tmp_dir):
    """`Stacker(strategy="mirrored")` to the end of `fit`, with the learned top and with fixed
    weights; predictions, mirrored variables and a save / reload. Two failures before:
    the final optimizer was built outside the strategy's scope (it raised), and every
    "mirrored" made a new MirroredStrategy, whose collective keys collided with the one
    that trained the stacks above (other shapes)."""
    x, y = data()
    out = {}
    for selection in ("auto", "meta", "best"):  # auto: the inner-CV comparison runs too
        strategy = "mirrored"
        keras.utils.set_random_seed(0)
        stacker = kfuse.Stacker(
            [kfuse.Branch(BASE, name="base", inputs="x", fit={"epochs": 8, "batch_size": 32, "learning_rate": 1e-2}),
             kfuse.Branch(make_base(), name="frozen", inputs="x", trainable=False)],
            meta=(8,), head=3, cv=3, verbose=0, meta_fit={"epochs": 10}, strategy=strategy, selection=selection,
        )
        stacker.fit({"x": x}, y)
        model = stacker.model_
        proba = stacker.predict_proba({"x": x})
        path = os.path.join(tmp_dir, f"stacker_{selection}.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
        out[selection] = {
            "chosen": stacker.selection_,
            "scored": sorted(stacker.selection_scores_),
            "same_strategy": model.distribute_strategy is kfuse.distribute.strategy.get_strategy("mirrored"),
            "variables_mirrored": all(
                isinstance(getattr(v, "value", v), tf.distribute.DistributedValues) for v in model.variables
            ),
            "accuracy": float(np.mean(proba.argmax(-1) == y)),
            "rows_sum_to_one": float(np.abs(proba.sum(-1) - 1).max()),
            "reload_diff": float(np.abs(
                np.asarray(reloaded.predict({"x": x}, verbose=0)) - np.asarray(model.predict({"x": x}, verbose=0))
            ).max()),
        }
    return out


def second_strategy_warning():
    """A second MirroredStrategy object over the same devices is warned about."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kfuse.distribute.strategy.get_strategy(kfuse.distribute.strategy.get_strategy("mirrored"))  # the same one: silent
        kfuse.distribute.strategy.get_strategy(tf.distribute.MirroredStrategy(DEVICES))
    return [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def max_diff(a, b):
    return float(max(np.abs(p - q).max() for p, q in zip(a, b, strict=True)))


def main():
    single = train("default")
    mirrored = train("mirrored")
    xla = train("default", jit_compile=True)
    try:
        train("mirrored", jit_compile=True)
        xla_error = None
    except ValueError as error:
        xla_error = str(error)
    report = {
        "devices": DEVICES,
        "replicas": [single[2], mirrored[2], xla[2]],
        "variables_mirrored": [single[3], mirrored[3], xla[3]],
        "loss_single": single[1],
        "loss_mirrored": mirrored[1],
        "loss_xla": xla[1],
        "weights_diff_mirrored": max_diff(single[0], mirrored[0]),
        "weights_diff_xla": max_diff(single[0], xla[0]),
        "prediction_diff_mirrored": float(np.abs(single[4] - mirrored[4]).max()),
        "xla_mirrored_error": xla_error,
        "recompile_outside_scope": recompile_outside_scope(),
        "base_untouched": bool(np.allclose(BASE.get_weights()[0], make_base().get_weights()[0])),
    }
    with tempfile.TemporaryDirectory() as tmp_dir:
        report["stacker"] = stacker_under_mirrored(tmp_dir)
    report["second_strategy_warnings"] = second_strategy_warning()
    print("RESULT " + json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
