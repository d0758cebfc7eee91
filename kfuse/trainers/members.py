"""Training an ensemble's members: one member alone (`fit_member`), every member in one
joint Keras model (`fit_parallel`), and the copy kept of a reused trainer (`copy_network`).

A member's fit is a `kfuse.trainers.jobs.FitJob` like a Stacker fold's (`member_job`), so
its route (fast loop or `Model.fit`) is decided once and `fit_job` trains it.
"""

import dataclasses

import keras
import numpy as np

from kfuse.branches.state import is_graph_model
from kfuse.trainers.jobs import FitJob, fit_job, route
from kfuse.utils.optimizers import copy_optimizer


def member_job(model, x, y, settings, sample_weight=None, callbacks=(), pool=None, group=1, key=None, tag=None):
    """The `FitJob` of one member: its fit settings (plus `seed`, the fast loop's shuffling
    seed), silent unless they say otherwise, `callbacks` after the settings' own; `pool`: a
    `kfuse.trainers.shared_fit.FitPool` whose workers train it (one trace per architecture)."""
    settings = dict(settings)
    settings.setdefault("verbose", 0)
    seed = settings.pop("seed", None)
    extra = list(settings.pop("callbacks", []) or []) + list(callbacks)
    settings.update(sample_weight=sample_weight, callbacks=extra or None)
    return FitJob(model, x, y, settings, seed, route(model, x, y, settings, group=group), key=key, tag=tag,
                  shared=pool)


def fit_member(model, x, y, settings, sample_weight=None, callbacks=(), pool=None):
    """Train one member: one traced call per epoch where the settings allow it
    (`kfuse.trainers.jobs.route`), else `Model.fit`; with `pool` (a
    `kfuse.trainers.shared_fit.FitPool`), fresh members of one architecture also share that traced
    function (one trace, not one per member). Returns the Keras `History`.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.trainers.members import fit_member

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = fit_member(model, np.ones((40, 4), "float32"), np.zeros(40), {"epochs": 2, "seed": 0})
    len(history.history["loss"])  # 2
    ```
    """
    return fit_job(member_job(model, x, y, settings, sample_weight, callbacks, pool))


@dataclasses.dataclass(frozen=True)
class NetworkCopy:
    """A copy of a functional or Sequential `network` to make later: its class and config,
    read now (each layer's own `trainable` flag as it is now), and the network, whose weights
    the copy takes when it is made. A snapshot ensemble's graph is built on its snapshots'
    own layers and freezes them; `estimators_` are made from these, trainable as trained.

    Example:

    ```python
    import keras
    from kfuse.trainers.members import NetworkCopy

    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    later = NetworkCopy.of(net)
    net.trainable = False
    copy = later.make()
    assert copy.trainable_weights and copy is not net  # trainable as it was read
    ```
    """

    network: keras.Model
    cls: type
    config: dict

    @classmethod
    def of(cls, network):
        """The copy to make of `network`; None for a model that is not functional or
        Sequential (`keras.models.clone_model` copies those, from the network as it is)."""
        return cls(network, type(network), network.get_config()) if is_graph_model(network) else None

    def make(self):
        """The copy: rebuilt from the config (about half the time of `clone_model`, which
        re-runs the graph layer by layer), with the network's current weights; uncompiled."""
        clone = self.cls.from_config(self.config)
        clone.set_weights(self.network.get_weights())
        return clone


def copy_network(model):
    """An uncompiled copy of a network with its current weights (`NetworkCopy`; any model
    that is not functional or Sequential through `keras.models.clone_model`)."""
    later = NetworkCopy.of(model)
    if later is not None:
        return later.make()
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def fit_parallel(members, x, targets, weights, settings, seed=None):
    """Train every member in one Keras model (one trace, one pass over the batches).

    The joint model has one input and one output per member and the sum of the members'
    losses; member i's rows enter with `weights[i]` (bootstrap counts, 0/1 for
    subsamples). One Adam (or the first member's optimizer) over all weights equals one
    optimizer per member, since each member's gradients come from its own loss only.
    With shuffling on (`Model.fit`'s default), member i reads the rows in its own order
    (a fixed permutation from `seed`, then the epoch's shuffle), so its batches are not
    the other members' batches: as when each trains alone, the batch order is a source
    of diversity (sharing one order cost Voting ensembles accuracy). This holds one
    copy of `x` per member.
    """
    n = len(targets)
    shuffled = settings.get("shuffle", True) is not False
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(n) if shuffled else np.arange(n) for _ in members]
    joint, feeds = _joint_model(members, x, orders)
    settings = dict(settings)
    settings.setdefault("verbose", 0)
    validation = settings.pop("validation_data", None)
    if validation is not None:
        xv, yv = validation[0], validation[1]
        val_feeds = {}
        for i, member in enumerate(members):
            for t in member.inputs:
                val_feeds[f"member_{i}_{t.name}"] = xv[t.name] if isinstance(xv, dict) else xv
        settings["validation_data"] = (val_feeds, [yv] * len(members))
    joint.fit(feeds, [np.asarray(targets)[order] for order in orders],
              sample_weight=[np.asarray(w, "float32")[order] for w, order in zip(weights, orders, strict=True)],
              **settings)
    return members


def _joint_model(members, x, orders):
    """The compiled joint model of `fit_parallel` and its inputs, keyed "member_<i>_<input>"."""
    inputs, outputs, feeds = {}, [], {}
    for i, (member, order) in enumerate(zip(members, orders, strict=True)):
        own = {t.name: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=f"member_{i}_{t.name}")
               for t in member.inputs}
        for name, tensor in own.items():
            inputs[f"member_{i}_{name}"] = tensor
            feeds[f"member_{i}_{name}"] = np.asarray(x[name] if isinstance(x, dict) else x)[order]
        outputs.append(member(next(iter(own.values()))) if len(own) == 1 else member(own))
    joint = keras.Model(inputs, outputs)
    first = members[0]
    optimizer = copy_optimizer(first.optimizer)
    joint.compile(optimizer=optimizer, loss=[m.loss for m in members], jit_compile=False)
    return joint, feeds
