"""A branch's base from a path: a `.keras` file, or a KerasHub preset directory.

A preset directory is what `model.save_to_preset(dir)` writes: `config.json` (the
backbone), `metadata.json`, the weights (`model.weights.h5`, or sharded
`model.weights.json`), and for a Task `task.json`, `task.weights.h5`, `preprocessor.json`,
`tokenizer.json` with its vocabulary under `assets/`. kfuse loads it offline with the
saved class's own `from_preset(dir)`: a Task (with its preprocessor and tokenizer
vocabulary) when `task.json` is there, else the backbone. kfuse never downloads: a hub
name (`"bert_tiny_en_uncased"`, `"kaggle://..."`, `"hf://..."`) is refused with the two
lines that turn it into a local preset directory.
"""

import json
import os
import zipfile

import keras

PRESET_FILES = ("config.json", "metadata.json")
WEIGHT_FILES = ("model.weights.h5", "model.weights.json")


def load_base_path(path, branch_name):
    """The `keras.Model` a `Branch` base given as a path names: a `.keras` file or a
    KerasHub preset directory. Anything else is refused, naming the branch.

    Example:

    ```python
    import keras, tempfile, os
    from kfuse.branches.presets import load_base_path

    x = keras.Input((3,), name="x")
    model = keras.Model(x, keras.layers.Dense(2)(x))
    path = os.path.join(tempfile.mkdtemp(), "m.keras")
    model.save(path)
    assert load_base_path(path, "b").output.shape == (None, 2)
    ```
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return load_preset_dir(path, branch_name)
    if os.path.exists(path) or path.endswith(".keras"):
        return _load_keras_file(path, branch_name)
    if "://" in path or os.sep not in path:
        raise ValueError(
            f"Branch '{branch_name}': {path!r} is neither a file nor a directory here; as a "
            "KerasHub preset name it needs a download, which kfuse never does. On a machine "
            f"with network access, run `keras_hub.models.Backbone.from_preset({path!r})"
            ".save_to_preset('presets/my_model')` (or the Task class, e.g. "
            "keras_hub.models.TextClassifier, to keep its preprocessor), copy that directory "
            "here and pass its path: Branch('presets/my_model', ...)."
        )
    raise ValueError(
        f"Branch '{branch_name}': no such file or directory {path!r} (a '.keras' file or a "
        "KerasHub preset directory written by save_to_preset)"
    )


def _load_keras_file(path, branch_name):
    if not os.path.exists(path):
        raise ValueError(f"Branch '{branch_name}': no such file {path!r}")
    if not path.endswith(".keras") or not zipfile.is_zipfile(path):
        raise ValueError(
            f"Branch '{branch_name}': {path!r} is not a Keras v3 '.keras' file (a zip archive "
            "written by model.save('name.keras')) nor a KerasHub preset directory"
        )
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:
        raise ValueError(f"Branch '{branch_name}': could not load {path!r}: {error}") from error


def _missing_files(path):
    present = set(os.listdir(path))
    missing = [f for f in PRESET_FILES if f not in present]
    if not present.intersection(WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    if "task.json" in present and "task.weights.h5" not in present:
        missing.append("task.weights.h5")
    if "tokenizer.json" in present and not os.path.isdir(os.path.join(path, "assets")):
        missing.append("assets/ (the tokenizer's vocabulary)")
    return missing


def load_preset_dir(path, branch_name):
    """The Task (when `task.json` is there) or Backbone saved in a preset directory."""
    missing = _missing_files(path)
    if missing:
        raise ValueError(
            f"Branch '{branch_name}': the KerasHub preset directory {path!r} is incomplete: "
            f"it lacks {missing}. Write the whole directory with `model.save_to_preset(dir)` "
            "(a Task's save_to_preset also writes its preprocessor and tokenizer assets) and "
            "copy every file."
        )
    try:
        import keras_hub
    except ImportError as error:
        raise ImportError(
            f"Branch '{branch_name}': {path!r} is a KerasHub preset directory; loading it "
            "needs keras-hub (pip install keras-hub)"
        ) from error
    name = "task.json" if os.path.exists(os.path.join(path, "task.json")) else "config.json"
    try:
        with open(os.path.join(path, name)) as handle:
            registered = json.load(handle)["registered_name"]
        cls = keras.saving.get_registered_object(registered) or keras_hub.models.Backbone
        return cls.from_preset(path)
    except Exception as error:
        raise ValueError(
            f"Branch '{branch_name}': could not load the KerasHub preset directory {path!r} "
            f"({type(error).__name__}: {error}). Write it again with model.save_to_preset(dir)."
        ) from error
