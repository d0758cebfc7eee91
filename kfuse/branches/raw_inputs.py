"""Raw inputs of KerasHub Tasks in the input pipeline: strings in, tokens to the graph.

KerasHub runs a Task's preprocessor outside the graph (its `PipelineModel` maps it over
the `tf.data` pipeline). A branch over a Task keeps that preprocessor, so a fused model
does the same: `fit`, `evaluate`, `predict`, `predict_proba` and `fit_head` take the raw
strings of each such branch under `<branch>_text` (the name the exported SavedModel
serves, `kfuse.branches.hub_preprocessors.text_preprocessors`) and feed the tokens to the branch's
inputs: numpy / lists / pandas are tokenized before the graph, a `tf.data.Dataset` gets
the preprocessor mapped over it. A model whose only inputs are one such branch's also
takes the strings alone (a list, a Series or an array).

Example:

```python
import keras, kfuse
from kfuse.branches.raw_inputs import tokenized

x = keras.Input((4,), name="x")
model = kfuse.stack([kfuse.Branch(keras.Model(x, x), name="b")], head=2)
data = {"x": [[0.0] * 4]}
assert tokenized(model, data) is data  # no KerasHub Task: the data as it is
```
"""

import difflib

import numpy as np

from kfuse.branches.hub_preprocessors import detached_tasks, text_preprocessors
from kfuse.inputs.names import input_names
from kfuse.inputs.values import (
    as_numpy,
    is_array_like,
    is_dataset,
    is_pandas,
    is_strings,
    user_value,
)

#: rows tokenized at once from in-memory strings (bounds the memory of one call)
CHUNK = 4096


def tokenized(model, x, where=None):
    """`x` with each `<branch>_text` entry replaced by its branch's token inputs.

    `model` is a `kfuse.FusedModel`; `x` as a user passes it (a dict, a single column of
    strings, a `tf.data.Dataset`). Data with no raw strings comes back as it is. Raw
    strings for a branch whose Task has no preprocessor are refused by branch name.
    """
    where = where or f"Model '{getattr(model, 'name', 'model')}'"
    raw, detached = text_preprocessors(model), detached_tasks(model)
    if not raw and not detached:
        return x  # no KerasHub Task branch: nothing to read
    plan = (raw, detached, input_names(model))
    return _tokenized(plan, model.input_dtypes, x, where)


def tokenized_for_branches(branches, x, where):
    """`tokenized` for the `kfuse.Branch`es of a `kfuse.Stacker` (before any model exists)."""
    triples = [(b.name, b.base, list(b.input_names)) for b in branches if not b.is_fresh]
    names = list(dict.fromkeys(n for b in branches for n in b.input_names))
    dtypes = {k: v for b in branches for k, v in b.input_dtypes.items() if v is not None}
    plan = (text_preprocessors(None, triples), detached_tasks(None, triples), names)
    return _tokenized(plan, dtypes, x, where)


def _tokenized(plan, dtypes, x, where):
    raw, detached, names = plan
    _refuse_detached(detached, names, x, where)
    if not raw:
        return x
    if is_dataset(x):
        return _map_dataset(dtypes, x, raw)
    single = _single_column(names, x, raw)
    if single is not None:
        x = {raw[0][0]: single}
    if not isinstance(x, dict) or not any(text in x for text, _, _ in raw):
        _suggest_text_key(x, raw, where)
        return x
    out = dict(x)
    for text, preprocessor, mapping in raw:
        if text not in out:
            continue
        given = sorted(n for n in mapping if n in out)
        if given:
            raise ValueError(
                f"{where}: the data gives both raw strings {text!r} and the tokens {given} of "
                f"branch '{text[: -len('_text')]}'; pass one of them."
            )
        strings = as_numpy(user_value(out.pop(text), ()))
        tokens = _tokenize(preprocessor, strings)
        out.update({n: tokens[key].astype(dtypes.get(n) or tokens[key].dtype) for n, key in mapping.items()})
    return out


def _tokenize(preprocessor, strings):
    """{output key: numpy array} of `preprocessor` over `strings`, CHUNK rows at a time."""
    parts = [preprocessor(strings[i : i + CHUNK]) for i in range(0, max(len(strings), 1), CHUNK)]
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}


def _single_column(names, x, raw):
    """The strings of `x` when `x` is one column of strings and the model reads nothing
    but one raw-text branch's tokens (and the presence input); else None."""
    if len(raw) != 1 or isinstance(x, dict) or not _holds_strings(x):
        return None
    needed = {n for n in names if n != "presence"}
    return x if needed <= set(raw[0][2]) else None


def holds_raw_strings(x):
    """Whether `x` (one column, or a dict of columns) holds strings: the cheap test a caller
    makes before building a model to read its Tasks' preprocessors from."""
    values = x.values() if isinstance(x, dict) else [x]
    return any(_holds_strings(v) for v in values)


def _holds_strings(value):
    if isinstance(value, (list, tuple)):
        return bool(value) and all(isinstance(v, (str, bytes)) for v in value)
    if is_pandas(value) and getattr(value, "ndim", 2) == 1:
        value = value.to_numpy()
    return is_array_like(value) and is_strings(value)


def _map_dataset(dtypes, dataset, raw):
    """`dataset` with each element's `<branch>_text` tokenized in the pipeline (as
    KerasHub's `PipelineModel` maps its preprocessor)."""
    import tensorflow as tf

    spec = dataset.element_spec
    features = spec[0] if isinstance(spec, tuple) else spec
    if not isinstance(features, dict) or not any(text in features for text, _, _ in raw):
        return dataset

    def convert(x):
        x = dict(x)
        for text, preprocessor, mapping in raw:
            if text in x:
                tokens = preprocessor(x.pop(text))
                x.update({n: tf.cast(tokens[k], dtypes.get(n) or tokens[k].dtype) for n, k in mapping.items()})
        return x

    if isinstance(spec, tuple):
        return dataset.map(lambda x, *rest: (convert(x), *rest), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE)


def _suggest_text_key(x, raw, where):
    """A dict lacking a raw-text branch's tokens: name `<branch>_text` (and a close key)."""
    if not isinstance(x, dict):
        return
    for text, _, mapping in raw:
        missing = [n for n in mapping if n not in x]
        if not missing:
            continue
        close = difflib.get_close_matches(text, [str(k) for k in x], n=1)
        hint = f" (did you mean {text!r} for {close[0]!r}?)" if close else ""
        raise ValueError(
            f"{where}: branch '{text[: -len('_text')]}' reads {sorted(mapping)}; the data "
            f"lacks {missing}{hint}. Pass its raw strings as {text!r} (the Task's "
            "preprocessor tokenizes them) or its token arrays under those names."
        )


def _refuse_detached(detached, names, x, where):
    """Raw strings for a branch over a Task with no preprocessor: a ValueError saying what
    to do (they would reach the graph as strings and fail on a dtype)."""
    needed = {n for n in names if n != "presence"}
    if detached and is_dataset(x):
        spec = x.element_spec[0] if isinstance(x.element_spec, tuple) else x.element_spec
        x = dict.fromkeys(spec) if isinstance(spec, dict) else x  # its keys name the inputs
    for name, task, reads in detached:
        if isinstance(x, dict):
            hit = f"{name}_text" in x or any(n in x and _holds_strings(x[n]) for n in reads)
        else:
            hit = _holds_strings(x) and needed <= set(reads)
        if hit:
            raise ValueError(
                f"{where}: branch '{name}' is a KerasHub {task} without a preprocessor "
                f"(preprocessor=None), so it takes token inputs {reads}, not raw "
                "strings. Tokenize them first (tokens = preprocessor(strings), a dict by "
                "those names), or build the Task with its preprocessor "
                f"({task}(backbone, ..., preprocessor=...)) and wrap that in the Branch."
            )
