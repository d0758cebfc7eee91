"""The KerasHub preprocessors inside a fused model, for a serving signature on raw strings and images.

A branch over a KerasHub `Task` keeps the Task as one layer of its sub-model, and the Task
keeps its `preprocessor` (with the tokenizer's vocabulary, restored by a `.keras` file from
its assets). KerasHub runs a preprocessor outside the graph (in the `tf.data` pipeline); a
SavedModel can hold it, so `kfuse.export.export_saved_model` serves each such branch on
raw strings: one string input `<branch>_text` whose tokens feed the branch's inputs; an
image Task's preprocessor (its image converter: resize, rescale) serves `<branch>_images`,
raw images of any size.
"""


def _hub_layers(sub_model):
    """The model itself (a Task wrapped directly) and its layers (a branch sub-model)."""
    return [sub_model, *getattr(sub_model, "layers", [])]


def _task_preprocessor(sub_model, part="tokenizer"):
    """The preprocessor of the Task inside a branch sub-model that holds `part` (its
    "tokenizer" for text, "image_converter" for images), or None."""
    for layer in _hub_layers(sub_model):
        pre = getattr(layer, "preprocessor", None)
        if pre is not None and getattr(pre, part, None) is not None:
            return pre
    return None


def fused_branches(model):
    """[(branch name, its sub-model, the model inputs it reads)] of a `kfuse.FusedModel`."""
    return [
        (info["name"], model.get_layer(info["name"]), list(info["inputs"]))
        for info in getattr(model, "kfuse_info", {}).get("branches", [])
    ]


def text_preprocessors(model, branches=None):
    """[(raw input name, preprocessor, {fused model input: preprocessor output key})], one
    per branch of `model` (a `kfuse.FusedModel`) over a Task with a text preprocessor.
    `branches`: (name, model, input names) triples instead (a Stacker's `kfuse.Branch`es).

    Refuses two such branches reading one model input (their tokens would clash).

    Example:

    ```python
    import keras, kfuse
    from kfuse.branches.hub_preprocessors import text_preprocessors

    x = keras.Input((4,), name="x")
    model = kfuse.stack([kfuse.Branch(keras.Model(x, x), name="b")], head=2)
    assert text_preprocessors(model) == []  # no KerasHub Task in it
    ```
    """
    found, fed = [], {}
    for branch, sub, inputs in fused_branches(model) if branches is None else branches:
        pre = _task_preprocessor(sub)
        if pre is None:
            continue
        mapping = dict(zip(inputs, [t.name for t in sub.inputs], strict=True))
        for name in mapping:
            if name in fed:
                raise ValueError(
                    f"Branches '{fed[name]}' and '{branch}' both read the model input "
                    f"{name!r} from their tokenizers; a serving signature on raw strings needs "
                    "each its own: Branch(task, name=..., inputs=['a_token_ids', ...])"
                )
            fed[name] = branch
        if not pre.built:
            pre.build(None)
        found.append((f"{branch}_text", pre, mapping))
    return found


def image_preprocessors(model):
    """[(raw input name, preprocessor, the fused model input it feeds)], one per branch of
    `model` (a `kfuse.FusedModel`) over a KerasHub image Task whose preprocessor has an
    image converter (resize, rescale): its raw images are served as `<branch>_images`.

    Example:

    ```python
    import keras, kfuse
    from kfuse.branches.hub_preprocessors import image_preprocessors

    x = keras.Input((8, 8, 3), name="img")
    model = kfuse.stack([kfuse.Branch(keras.Model(x, keras.layers.Flatten()(x)), name="b")], head=2)
    assert image_preprocessors(model) == []  # no KerasHub image Task in it
    ```
    """
    found = []
    for branch, sub, inputs in fused_branches(model):
        pre = _task_preprocessor(sub, "image_converter")
        if pre is None or getattr(pre, "tokenizer", None) is not None or len(inputs) != 1:
            continue  # a text (or multimodal) Task: served by text_preprocessors, or not at all
        if not pre.built:
            pre.build(None)
        found.append((f"{branch}_images", pre, inputs[0]))
    return found


def detached_tasks(model, branches=None):
    """[(branch name, Task class name, the branch's model inputs)] of each branch of `model`
    (or of `branches`, as in `text_preprocessors`) over a KerasHub Task whose
    `preprocessor` is None: it takes tokens, never raw strings."""
    found = []
    for branch, sub, inputs in fused_branches(model) if branches is None else branches:
        for layer in _hub_layers(sub):
            is_task = type(layer).__module__.startswith("keras_hub") and hasattr(layer, "backbone")
            if is_task and hasattr(layer, "preprocessor") and layer.preprocessor is None:
                found.append((branch, type(layer).__name__, list(inputs)))
                break
    return found
