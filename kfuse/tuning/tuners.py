"""`make_tuner`: a KerasTuner tuner over a `FusionHyperModel`, its objective checked first."""

import keras_tuner

TUNERS = {
    "random": keras_tuner.RandomSearch,
    "bayesian": keras_tuner.BayesianOptimization,
    "hyperband": keras_tuner.Hyperband,
}


def make_tuner(hypermodel, kind="random", objective="val_accuracy", max_trials=10, max_epochs=3, **kwargs):
    """A RandomSearch, BayesianOptimization or Hyperband tuner over `hypermodel`.

    Args:
        hypermodel: a `kfuse.tuning.FusionHyperModel`.
        kind: "random", "bayesian" or "hyperband".
        objective: a compiled metric name (checked now, not after the first trial).
        max_trials: the trial budget (random, bayesian).
        max_epochs: the most epochs one model trains (hyperband).
        **kwargs: passed to the tuner (directory, project_name, seed, overwrite, ...).

    Example:

    ```python
    import tempfile
    import keras, kfuse

    base = keras.Sequential([keras.Input((8,), name="x"), keras.layers.Dense(3)])
    hypermodel = kfuse.tuning.FusionHyperModel(
        [kfuse.Branch(base, name="a", output="logits"), kfuse.Branch(base, name="b", output="logits")],
        head=3, fusions=["concat", "average"])
    tuner = kfuse.tuning.make_tuner(hypermodel, "hyperband", max_epochs=4,
                                    directory=tempfile.mkdtemp(), project_name="mnist1d")
    ```
    """
    if kind not in TUNERS:
        raise ValueError(f"Unknown tuner {kind!r}; choose one of {sorted(TUNERS)}")
    hypermodel.check_objective(objective)
    if kind == "hyperband":
        return TUNERS[kind](hypermodel, objective=objective, max_epochs=max_epochs, **kwargs)
    return TUNERS[kind](hypermodel, objective=objective, max_trials=max_trials, **kwargs)
