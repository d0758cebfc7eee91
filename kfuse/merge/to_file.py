"""``merge_to_file``: merge ``.keras`` files into a ``.keras`` file, one tensor at a time.

No Keras model is built with weights: the architecture is read from the first file's config
with its variables left uninitialised (``keras.StatelessScope(initialize_variables=False)``,
in a short-lived thread so that Keras's thread-local list of uninitialised variables goes
with it), and each merged tensor is written straight into the output's ``model.weights.h5``.
Peak memory is one tensor per input plus the merged one, whatever the models' size.
"""

import datetime
import json
import os
import shutil
import threading
import zipfile

import h5py
import keras
import numpy as np

from kfuse.utils.progress import progress_bar

from .api import first_model, merged_tensor, open_sources, prepare, warn_unrepaired
from .atomic import atomic_output, check_output
from .checks import weight_specs
from .sources import WEIGHTS, _open_h5, build_from_file, reference_layout


def _specs_from_file(path, name):
    """``(specs, layout)`` of the model in ``path`` without allocating its weights."""
    out = {}

    def build():
        try:
            with keras.StatelessScope(initialize_variables=False):
                skeleton = build_from_file(path, name)
            out["specs"] = weight_specs(skeleton)
            out["layout"] = reference_layout(skeleton, path)
        except BaseException as e:  # re-raised in the caller's thread
            out["error"] = e

    thread = threading.Thread(target=build, name="kfuse-merge-skeleton")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["specs"], out["layout"]


def _write_weights(reference, target, merged_of):
    """Copy ``reference``'s groups and attributes into ``target`` (not its optimizer), each
    dataset from ``merged_of(dataset path)`` or, where that is ``None``, from the reference."""
    for key, value in reference.attrs.items():
        target.attrs[key] = value

    def visit(name, obj):
        if name == "optimizer" or name.startswith("optimizer/"):
            return
        if isinstance(obj, h5py.Group):
            group = target.require_group(name)
            for key, value in obj.attrs.items():
                group.attrs[key] = value
            return
        data = merged_of(name)
        if data is None:
            data = obj[()]
        dataset = target.create_dataset(name, data=np.asarray(data, dtype=obj.dtype))
        for key, value in obj.attrs.items():
            dataset.attrs[key] = value

    reference.visititems(visit)


def merge_to_file(models, method, output, base=None, *, model_parameters=None,
                  dtype="float32", repair_data=None, batch_size=256, overwrite=False,
                  verbose=0, **parameters):
    """Merge ``.keras`` files into the ``.keras`` file ``output``; returns its path.

    Arguments as ``merge``, but every input (and ``base``) is a ``.keras`` path, and the
    result is written, not returned: the output file is complete or absent (written beside
    ``output`` and renamed into place; removed on an error, Ctrl-C or SIGTERM, and a killed
    merge's temp files are removed by the next merge into that folder). ``output`` may not
    be one of the inputs, and an existing ``output`` is replaced only with
    ``overwrite=True``. Equal to ``merge(...).save(output)``, in the memory
    of one tensor per input. With ``repair_data`` the merged file is loaded once to
    recompute its BatchNorm statistics (that step holds one model). ``verbose=1`` shows a
    progress bar over the merged tensors (``kfuse.utils.progress``); 0 (the default) is silent.

    Example:

    ```python
    import os, tempfile, keras
    from kfuse.merge import merge_to_file
    folder = tempfile.mkdtemp()
    paths = [os.path.join(folder, f"m{i}.keras") for i in range(2)]
    for p in paths:
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]).save(p)
    out = merge_to_file(paths, "linear", os.path.join(folder, "merged.keras"))
    print(keras.saving.load_model(out).count_params())  # 15
    ```
    """
    output = os.fspath(output)
    if not output.endswith(".keras"):
        raise ValueError(f"output {output!r} must end in .keras")
    for where, m in [("base", base)] + [(f"models[{i}]", m) for i, m in enumerate(models)]:
        if isinstance(m, keras.Model):
            raise TypeError(
                f"merge_to_file reads .keras files; {where} is an in-memory keras.Model. "
                "Use merge(...) and model.save(output), or save it first."
            )
    method, models, base, model_parameters, parameters = prepare(
        models, method, base, model_parameters, dtype, parameters)
    check_output(output, [("base", base)] + [(f"models[{i}]", m) for i, m in enumerate(models)],
                 overwrite)
    first, first_name = first_model(models, base)
    specs, layout = _specs_from_file(str(first), first_name)
    spec_of = {dataset: spec for spec, dataset in zip(specs, layout, strict=True) if dataset}
    with atomic_output(output) as tmp:
        with open_sources(models, base, specs, layout, first_name) as (sources, base_source):
            bar = progress_bar(len(spec_of), verbose, unit_name="tensor")

            def merge_one(spec):
                merged = merged_tensor(spec, method, sources, base_source, model_parameters,
                                       parameters, np.dtype(dtype))
                bar.add(1)
                return merged

            _write_archive(str(first), tmp, spec_of, merge_one)
        if any(s.kind == "bn_stat" for s in specs):
            if repair_data is not None:
                from .batchnorm import repair_batchnorm

                model = keras.saving.load_model(tmp, compile=False, safe_mode=True)
                repair_batchnorm(model, repair_data, batch_size=batch_size)
                model.save(tmp)
            else:
                warn_unrepaired(stacklevel=2)
    return output


def _write_archive(first, path, spec_of, merge_one):
    """Write the ``.keras`` archive ``path``: ``first``'s config (without its compile
    config), fresh metadata, a ``model.weights.h5`` of merged tensors and ``first``'s
    assets."""
    with zipfile.ZipFile(first) as z:
        config = json.loads(z.read("config.json"))
    config.pop("compile_config", None)
    weights = path + ".weights.h5"
    try:
        reference, window = _open_h5(first)
        with reference, h5py.File(weights, "w") as target:
            _write_weights(reference, target,
                           lambda name: merge_one(spec_of[name]) if name in spec_of else None)
        if window is not None:
            window.close()
        metadata = {"keras_version": keras.__version__,
                    "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
            z.writestr("metadata.json", json.dumps(metadata))
            z.writestr("config.json", json.dumps(config))
            z.write(weights, WEIGHTS)
            with zipfile.ZipFile(first) as source:
                for info in source.infolist():  # assets (vocabularies, lookup tables)
                    if info.filename not in ("config.json", "metadata.json", WEIGHTS):
                        with source.open(info) as src, z.open(info.filename, "w") as dst:
                            shutil.copyfileobj(src, dst)
    finally:
        if os.path.exists(weights):
            os.remove(weights)
