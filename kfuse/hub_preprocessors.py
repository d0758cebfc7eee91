"""The KerasHub text preprocessors inside a fused model, for a serving signature on raw strings.

A branch over a KerasHub `Task` keeps the Task as one layer of its sub-model, and the Task
keeps its `preprocessor` (with the tokenizer's vocabulary, restored by a `.keras` file from
its assets). KerasHub runs a preprocessor outside the graph (in the `tf.data` pipeline); a
SavedModel can hold it, so `kfuse.export.export_saved_model` serves each such branch on
raw strings: one string input `<branch>_text` whose tokens feed the branch's inputs.
"""


def _text_preprocessor(sub_model):
    """The preprocessor (with a tokenizer) of the Task inside a branch sub-model, or None."""
    for layer in sub_model.layers:
        pre = getattr(layer, "preprocessor", None)
        if pre is not None and getattr(pre, "tokenizer", None) is not None:
            return pre
    return None


def text_preprocessors(model):
    """[(raw input name, preprocessor, {fused model input: preprocessor output key})], one
    per branch of `model` (a `kfuse.FusedModel`) over a Task with a text preprocessor.

    Refuses two such branches reading one model input (their tokens would clash).

    Example:

    ```python
    import keras, kfuse
    from kfuse.hub_preprocessors import text_preprocessors

    x = keras.Input((4,), name="x")
    model = kfuse.stack([kfuse.Branch(keras.Model(x, x), name="b")], head=2)
    assert text_preprocessors(model) == []  # no KerasHub Task in it
    ```
    """
    found, fed = [], {}
    for info in getattr(model, "kfuse_info", {}).get("branches", []):
        sub = model.get_layer(info["name"])
        pre = _text_preprocessor(sub)
        if pre is None:
            continue
        mapping = dict(zip(info["inputs"], [t.name for t in sub.inputs], strict=True))
        for name in mapping:
            if name in fed:
                raise ValueError(
                    f"Branches '{fed[name]}' and '{info['name']}' both read the model input "
                    f"{name!r} from their tokenizers; a serving signature on raw strings needs "
                    "each its own: Branch(task, name=..., inputs=['a_token_ids', ...])"
                )
            fed[name] = info["name"]
        if not pre.built:
            pre.build(None)
        found.append((f"{info['name']}_text", pre, mapping))
    return found


def detached_tasks(model):
    """[(branch name, Task class name, the branch's model inputs)] of each branch of `model`
    over a KerasHub Task whose `preprocessor` is None: it takes tokens, never raw strings."""
    found = []
    for info in getattr(model, "kfuse_info", {}).get("branches", []):
        for layer in model.get_layer(info["name"]).layers:
            is_task = type(layer).__module__.startswith("keras_hub") and hasattr(layer, "backbone")
            if is_task and hasattr(layer, "preprocessor") and layer.preprocessor is None:
                found.append((info["name"], type(layer).__name__, list(info["inputs"])))
                break
    return found
