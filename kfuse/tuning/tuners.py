"""`make_tuner`: a KerasTuner tuner over a `FusionHyperModel`, its objective checked first,
its first trial the space's defaults, a progress bar over its trials."""

import gc

import keras_tuner

from kfuse.utils.progress import progress_bar


class _FrozenHeap:
    """`search` with the objects alive at its start frozen out of garbage collection.

    KerasTuner calls `gc.collect()` twice per trial (`clear_session` and its own); in a
    process holding TensorFlow and the bases each call walks every object there is
    (about 0.2 s on 2 quiet cores, over 1 s on busy ones). `gc.freeze()` (Python's
    public switch) moves what exists when the search starts to a generation those
    calls skip, so they walk only what the trials made, and still free it. The heap is
    unfrozen when the search ends (or fails). No collection runs before the freeze
    (one would walk the whole heap once more, about 0.3 s): garbage from before the
    search is frozen with the rest and freed by the first full collection after it.
    """

    def search(self, *args, **kwargs):
        gc.freeze()
        try:
            return super().search(*args, **kwargs)
        finally:
            gc.unfreeze()


class _DefaultsFirst:
    """The search's first trial runs the space's default values.

    KerasTuner's oracles draw even the first trial at random. `FusionHyperModel`'s
    defaults are its warm-startable design (every branch, an averaging fusion, frozen
    bases, no dropout), which starts as the plain average of the branches: run first, it
    puts a warm-started design among the trials of even a 1-trial search. Later trials
    draw as the oracle does (and skip the defaults once tried: the oracle records the
    values a trial ran). A Hyperband trial that continues an earlier one keeps that
    trial's values; a resumed search (`overwrite=False`) has run its first trial already.
    """

    def on_trial_begin(self, trial):
        values = trial.hyperparameters.values
        first = trial.trial_id.isdigit() and int(trial.trial_id) == 0  # the oracle numbers trials from 0
        if first and "tuner/trial_id" not in values:
            space = self.oracle.get_space()
            values.update({hp.name: hp.default for hp in space.space if space.is_active(hp)})
        super().on_trial_begin(trial)


class _TrialBar:
    """A progress bar over the search's trials (`kfuse.utils.progress`), shown when the tuner
    was made with `make_tuner(..., verbose=1)`; independent of `search(verbose=...)`, which
    drives KerasTuner's own per-trial display and the fits' output. Its total is the oracle's
    `max_trials` (unknown for Hyperband)."""

    progress_verbose = 0

    def search(self, *args, **kwargs):
        total = getattr(self.oracle, "max_trials", None)
        self._trial_bar = progress_bar(total, self.progress_verbose, unit_name="trial")
        # a resumed search (overwrite=False) counts its trials; a distributed worker's oracle is
        # KerasTuner's OracleClient, which holds no trials (AttributeError: counted as none)
        done = len(getattr(self.oracle, "trials", None) or {})
        if done:
            self._trial_bar.update(done)
        return super().search(*args, **kwargs)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self._trial_bar.add(1)


class RandomSearch(_TrialBar, _FrozenHeap, _DefaultsFirst, keras_tuner.RandomSearch):
    """`keras_tuner.RandomSearch`: the first trial runs the defaults; garbage collections skip the old heap."""


class BayesianOptimization(_TrialBar, _FrozenHeap, _DefaultsFirst, keras_tuner.BayesianOptimization):
    """`keras_tuner.BayesianOptimization`: the first trial runs the defaults; collections skip the old heap."""


class Hyperband(_TrialBar, _FrozenHeap, _DefaultsFirst, keras_tuner.Hyperband):
    """`keras_tuner.Hyperband`: the first trial runs the defaults; collections skip the old heap."""


TUNERS = {"random": RandomSearch, "bayesian": BayesianOptimization, "hyperband": Hyperband}


def make_tuner(hypermodel, kind="random", objective="val_accuracy", max_trials=10, max_epochs=3, verbose=0,
               **kwargs):
    """A RandomSearch, BayesianOptimization or Hyperband tuner over `hypermodel`.

    Its first trial runs the space's default values (`FusionHyperModel`'s warm-startable
    design, when the branches hand over class scores: the plain average of the branches
    to start from); the oracle draws the trials after it.

    Args:
        hypermodel (FusionHyperModel): a `kfuse.tuning.FusionHyperModel`.
        kind (str): "random", "bayesian" or "hyperband".
        objective (str): a compiled metric name (checked now, not after the first trial).
        max_trials (int): the trial budget (random, bayesian).
        max_epochs (int): the most epochs one model trains (hyperband).
        verbose (int): 1 shows a progress bar over the trials; 0 (the default) is silent.
            `tuner.search(..., verbose=...)` still sets KerasTuner's display and the fits' output.
        **kwargs (Any): passed to the tuner (directory, project_name, seed, overwrite, ...).

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
        tuner = TUNERS[kind](hypermodel, objective=objective, max_epochs=max_epochs, **kwargs)
    else:
        tuner = TUNERS[kind](hypermodel, objective=objective, max_trials=max_trials, **kwargs)
    tuner.progress_verbose = int(verbose or 0)
    return tuner
