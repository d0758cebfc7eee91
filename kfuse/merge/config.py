"""mergekit-style YAML merge configs and ``main(argv)`` (the ``kfuse merge`` subcommand).

```yaml
merge_method: ties
base_model: base.keras
models:
  - model: a.keras
    parameters: {weight: 1.0, density: 0.5}
  - model: b.keras
    parameters: {weight: 0.5, density: [0.3, 0.7]}
parameters: {lambda: 1.0}
dtype: float32
output: merged.keras
```
Data-aware methods (fisher, regmean, adamerging, zipit) read input rows: ``data: rows.npy``
at the top (all models) or under a model entry (see ``kfuse.merge.config_data``).
Relative paths are relative to the YAML file's folder.
"""

import argparse
import difflib
import os
import re
import sys

from kfuse.utils import yaml_marks

from .config_data import merge_data_to_file, resolve_data
from .data_aware import DATA_METHODS
from .methods import METHODS

TOP_KEYS = ("merge_method", "base_model", "models", "parameters", "dtype", "output", "data")
MODEL_KEYS = ("model", "parameters", "data")


class ConfigError(ValueError):
    """A merge config that cannot be used; the message is one line."""


def _unknown(key, valid, where):
    close = difflib.get_close_matches(str(key), valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"{where}: unknown key {key!r} (expected {', '.join(valid)}){hint}")


def _parameters(value, where):
    """A ``parameters`` entry as a dict (absent or empty: ``{}``); anything else is refused."""
    value = value or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping")
    return dict(value)


def load_config(path):
    """Read and check a merge YAML; returns a dict of ``merge`` arguments and ``output``.

    Example:

    ```python
    import os, tempfile
    from kfuse.merge.config import load_config
    folder = tempfile.mkdtemp()
    for name in ("a", "b"):  # the files must exist; merging reads them, not load_config
        open(os.path.join(folder, name + ".keras"), "w").close()
    path = os.path.join(folder, "merge.yaml")
    with open(path, "w") as f:
        f.write("merge_method: linear\\nmodels: [{model: a.keras, parameters: {weight: 3}}, b.keras]\\n")
    config = load_config(path)
    print(config["model_parameters"])  # [{'weight': 3}, {}]
    print(config["models"][0] == os.path.join(folder, "a.keras"))  # True: beside the YAML file
    ```
    """
    if not os.path.exists(path):
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        raw = yaml_marks.load(path)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {', '.join(TOP_KEYS)}")
    for key in raw:
        if key not in TOP_KEYS:
            raise _unknown(key, TOP_KEYS, yaml_marks.where(path, raw, key, value=False))
    folder = os.path.dirname(os.path.abspath(path))

    def where(p):
        return p if os.path.isabs(str(p)) else os.path.join(folder, str(p))

    method = raw.get("merge_method")
    names = [*METHODS, *DATA_METHODS]
    if method not in names:
        close = difflib.get_close_matches(str(method), names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{yaml_marks.where(path, raw, 'merge_method')}: merge_method {method!r} is not one "
            f"of {', '.join(names)}{hint}"
        )
    models = raw.get("models")
    if not isinstance(models, list) or not models:
        raise ConfigError(f"{yaml_marks.where(path, raw, 'models')}: 'models' must be a "
                          "non-empty list of {model: file.keras}")
    files, model_parameters, entries = [], [], []
    for i, entry in enumerate(models):
        at = yaml_marks.where(path, models, i)
        if isinstance(entry, str):
            entry = {"model": entry}
        if not isinstance(entry, dict) or "model" not in entry:
            raise ConfigError(f"{at}: models[{i}] must be a mapping with key 'model'")
        for key in entry:
            if key not in MODEL_KEYS:
                raise _unknown(key, MODEL_KEYS, f"{yaml_marks.where(path, entry, key, False)}: "
                                                f"models[{i}]")
        entries.append(entry)
        files.append((where(entry["model"]), at))
        model_parameters.append(_parameters(entry.get("parameters"), f"{at}: models[{i}].parameters"))
    parameters = _parameters(raw.get("parameters"),
                             f"{yaml_marks.where(path, raw, 'parameters')}: 'parameters'")
    if raw.get("base_model"):
        files.append((where(raw["base_model"]), yaml_marks.where(path, raw, "base_model")))
    for f, at in files:
        if not os.path.exists(f):
            raise ConfigError(f"{at}: model file {f!r} does not exist")
    files = [f for f, _ in files[:len(models)]]
    try:
        data = resolve_data(raw, entries, method, where, path)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return {
        "models": files,
        "method": method,
        "base": where(raw["base_model"]) if raw.get("base_model") else None,
        "model_parameters": model_parameters if any(model_parameters) else None,
        "parameters": parameters,
        "dtype": raw.get("dtype", "float32"),
        "output": where(raw["output"]) if raw.get("output") else None,
        "places": {**{key: yaml_marks.where(path, raw, key) for key in TOP_KEYS},
                   "models": [yaml_marks.where(path, models, i) for i in range(len(models))]},
        "data": data,
    }


def _place(message, places):
    """Where in the YAML file an error of ``merge_to_file`` points: the models[i] entry of a
    ``model_parameters[i]`` error, the 'parameters' / 'dtype' / 'base_model' entry it names."""
    per_model = re.match(r"model_parameters\[(\d+)\]", message)
    if per_model and int(per_model.group(1)) < len(places["models"]):
        return places["models"][int(per_model.group(1))]
    for key, words in (("dtype", ("dtype",)), ("base_model", ("base=", "base ")),
                       ("output", ("output",)), ("parameters", ("parameter", "'t'", "'lambda'"))):
        if any(word in message for word in words):
            return places[key]
    return places["merge_method"]


def run_config(path, output=None, overwrite=False, verbose=0):
    """Merge as ``path`` says into the ``.keras`` file (``merge_to_file``: one tensor per input
    in memory; the file is complete or absent); returns the output path. An existing output
    is replaced only with ``overwrite=True``; an output that is one of the inputs never.
    ``verbose=1`` shows a progress bar over the merged tensors (weight-only methods).

    Example:

    ```python
    import os, tempfile, keras
    from kfuse.merge.config import run_config
    folder = tempfile.mkdtemp()
    for name in ("a", "b"):
        keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(
            os.path.join(folder, name + ".keras"))
    path = os.path.join(folder, "merge.yaml")
    with open(path, "w") as f:
        f.write("merge_method: slerp\\nmodels: [a.keras, b.keras]\\nparameters: {t: 0.5}\\n"
                "output: out.keras\\n")
    print(os.path.basename(run_config(path)))  # out.keras
    ```
    """
    from .to_file import merge_to_file

    config = load_config(path)
    output = output or config["output"]
    if not output:
        raise ConfigError(f"{path}: no output path; add 'output: merged.keras' or pass -o")
    if not str(output).endswith(".keras"):
        raise ConfigError(f"output {output!r} must end in .keras")
    if config["model_parameters"] is not None and config["method"] == "slerp":
        raise ConfigError(f"{path}: slerp takes no per-model parameters; set parameters: {{t: ..}}")
    try:
        if config["data"] is not None:
            return merge_data_to_file(config, output, overwrite=overwrite)
        merge_to_file(config["models"], config["method"], output, base=config["base"],
                      model_parameters=config["model_parameters"], dtype=config["dtype"],
                      overwrite=overwrite, verbose=verbose, **config["parameters"])
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as e:
        message = str(e).replace("overwrite=True (kfuse merge: --force)", "--force")
        raise ConfigError(f"{_place(message, config['places'])}: {message}") from None
    return output


def main(argv=None):
    """``kfuse merge CONFIG.yaml [-o OUT.keras]``: returns the exit status (0, or 2 on error).

    Example:

    ```python
    from kfuse.merge.config import main
    print(main(["/nonexistent/merge.yaml"]))  # 2, with a one-line error on stderr
    ```
    """
    parser = argparse.ArgumentParser(prog="kfuse merge", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="mergekit-style YAML file")
    parser.add_argument("-o", "--output", help="output .keras path (overrides 'output')")
    parser.add_argument("--force", action="store_true", help="replace an existing output")
    args = parser.parse_args(argv)
    try:
        out = run_config(args.config, args.output, overwrite=args.force)
    except ConfigError as e:
        print(f"kfuse merge: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    print(f"kfuse merge: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
