"""Functions that tests/test_ray_scale_out.py ships to Ray workers (module-level, so Ray
pickles them by reference and each worker imports this module: PYTHONPATH is the repo)."""

import os

import keras
import numpy as np

import kfuse


def rows(n=256, seed=0):
    """8 features, 3 classes from one fixed rule."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x[:, :3] @ np.array([1.0, -1.0, 0.5]) > 0).astype("int64") + (x[:, 3] > 1.0)
    return x, y


def build_stack(strategy):
    """A base branch and a fresh branch, fused by concatenation; SGD so steps are plain."""
    base = keras.Sequential(
        [
            keras.Input((8,), name="x"),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3),
        ],
        name="base",
    )
    branches = [
        kfuse.Branch(base, name="base", inputs="x", output="logits"),
        kfuse.Branch(
            lambda t: keras.layers.Dense(8, activation="relu")(t), name="fresh", inputs="x"
        ),
    ]
    return kfuse.stack(
        branches,
        fusion="concat",
        head=3,
        strategy=strategy,
        warm_start=False,
        optimizer=keras.optimizers.SGD(0.2),
    )


def build_tuner(directory, max_trials):
    """A 3-design search over two saved bases (directory/a.keras, b.keras)."""
    branches = [
        kfuse.Branch(os.path.join(directory, f"{name}.keras"), name=name, output="probabilities")
        for name in ("a", "b")
    ]
    hypermodel = kfuse.tuning.FusionHyperModel(
        branches,
        head=3,
        fusions=["concat", "average", "weighted_average"],
        finetune=0,
        meta_dropout=0.0,
        modality_dropout=0.0,
        learning_rate=(1e-2,),
    )
    return kfuse.tuning.make_tuner(
        hypermodel,
        "random",
        objective="val_accuracy",
        max_trials=max_trials,
        seed=0,
        directory=os.path.join(directory, "runs"),
        project_name="ray",
    )


def saved_base(path, seed):
    """A small softmax base trained a few steps on `rows`, saved to `path`."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8,), name="x"),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    x, y = rows(256, seed=10 + seed)
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    model.save(path)
