"""`FitJob`: one model to train and the route it takes, decided once; `fit_job`, the dispatch.

Every fit kfuse makes (a Stacker's fold model or refit, an ensemble's member) is a
`FitJob`: the compiled model, its rows, its `Model.fit` settings, its shuffling seed and
the ROUTE it takes, decided once by `route` when the job is made:

- ``"together"``: side by side with other jobs of its `key` in one traced epoch
  (`kfuse.trainers.side_by_side`), where a scheduler pairs it (`kfuse.trainers.schedule`);
- ``"thread"``: the fast loop in a pool thread beside other jobs;
- ``"loop"``: the fast loop (`kfuse.trainers.epoch_loop`, one traced call per epoch) here;
- ``"keras"``: `Model.fit`, where the fast loop does not apply.

A job is a plain dataclass of what a fit needs, so an engine may run it elsewhere.
"""

import dataclasses

from kfuse.trainers import epoch_loop

TOGETHER, THREAD, LOOP, KERAS = "together", "thread", "loop", "keras"
ROUTES = (TOGETHER, THREAD, LOOP, KERAS)


@dataclasses.dataclass(eq=False)
class FitJob:
    """One model to train: `model.fit(x, y, **settings)` by its `route`.

    Args:
        model: the compiled Keras model (trained in place).
        x, y: its rows (numpy arrays, or a dict of them for several inputs).
        settings: `Model.fit` keyword arguments (epochs, batch_size, sample_weight...).
        seed: the fast loop's shuffling seed (None: drawn when it trains).
        route: one of `ROUTES` (see the module docstring); `route()` decides it.
        key: jobs of one key (one architecture, one settings source) may train together.
        tag: the caller's handle of the job (a member index, a fold), for `done`.
        shared: a `SharedFit` or `FitPool` whose worker trains the model (one trace per
            architecture), or None: the model trains itself.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.trainers.jobs import FitJob, fit_job, route

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y, settings = np.ones((40, 4), "float32"), np.zeros(40), {"epochs": 2, "batch_size": 8}
    job = FitJob(model, x, y, settings, seed=0, route=route(model, x, y, settings))
    job.route  # 'loop' (on TensorFlow)
    history = fit_job(job)
    ```
    """

    model: object
    x: object
    y: object
    settings: dict = dataclasses.field(default_factory=dict)
    seed: int | None = None
    route: str = LOOP
    key: object = None
    tag: object = None
    shared: object = None

    def __post_init__(self):
        if self.route not in ROUTES:
            raise ValueError(f"FitJob: route must be one of {ROUTES}; received {self.route!r}")


def route(model, x, y, settings, group=1, n_jobs=1, shareable=True):
    """The route of a fit: THE one answer to "can this fit use the fast loop, and how".

    `group`: jobs a scheduler may train side by side (> 1: pairing is on); `n_jobs`:
    threads it may run jobs in (> 1: threads are on); `shareable`: whether the model may
    train in another model's variables (not where its preprocessing was re-adapted:
    adapted vocabularies are lookup tables, not variables). The fast loop needs what
    `epoch_loop.supports` says; a thread or a pair also a silent fit without callbacks
    (callback objects are shared between jobs; `Model.fit` seeds tf.data from the global
    state), and a pair no validation data or initial epoch.
    """
    if not epoch_loop.supports(model, x, y, settings):
        return KERAS
    quiet = not settings.get("callbacks") and not settings.get("verbose")
    if n_jobs > 1 and quiet:
        return THREAD
    plain = settings.get("validation_data") is None and not settings.get("validation_split")
    if group > 1 and shareable and quiet and plain and not settings.get("initial_epoch"):
        return TOGETHER
    return LOOP


def fit_job(job):
    """Train `job.model` alone by its route; returns the Keras `History`. (A ``"together"``
    job trained alone, where no partner came, takes the fast loop.)"""
    if job.route == KERAS:
        return job.model.fit(job.x, job.y, **job.settings)
    if job.shared is not None:
        return job.shared.train(job.model, job.x, job.y, job.seed, job.settings)
    return epoch_loop.fit_fast(job.model, job.x, job.y, job.seed, job.settings)
