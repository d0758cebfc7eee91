"""Cached meta-features: a frozen base's outputs computed once, in large batches.

A frozen branch does not change while the meta-learner trains, so running it every
epoch (as `model.fit` on the whole graph does) repeats the same work. The cache runs
each frozen branch once over all rows; the meta-learner and head then train on the
cached arrays with large batches, and the result is put back into the one graph.
"""

import numpy as np

from kfuse.training.base_training import feature_model, predict

CACHE_BATCH = 1024


def cached_features(branches, methods, arrays, input_shapes, batch_size=CACHE_BATCH):
    """{branch name: features of every row} for the given (frozen, built) branches."""
    cache = {}
    for branch in branches:
        model = feature_model(branch, branch.base, methods[branch.name], input_shapes)
        cache[branch.name] = predict(model, branch.input_names, arrays, batch_size=batch_size)
    return cache


def top_inputs(model, branch_names, raw_names):
    """The tensors the trainable top of `model` reads: branch outputs, then raw inputs."""
    tensors = [model._branch_tensor(name) for name in branch_names]
    by_name = {t.name: t for t in model.inputs}
    return tensors + [by_name[k] for k in raw_names]


def top_data(features, branch_names, arrays, raw_names, rows):
    """The arrays matching `top_inputs`, restricted to `rows`."""
    data = [np.asarray(features[name])[rows] for name in branch_names]
    return data + [arrays[k][rows] for k in raw_names]


def graph_features(model, names, arrays, batch_size=CACHE_BATCH):
    """{branch name: output} of the branches `names` of `model`, in one batched pass."""
    import keras

    probe = keras.Model(model.inputs, [model._branch_tensor(n) for n in names])
    values = probe.predict(model._as_inputs(arrays), batch_size=batch_size, verbose=0)
    values = [values] if len(names) == 1 else values
    return {n: np.asarray(v) for n, v in zip(names, values, strict=True)}
