"""The configuration fingerprint of a Stacker run: what the fold models depend on.

Two runs with equal fingerprints train identical fold models, so a `work_dir` may be
resumed; anything else is refused. The meta-learner, fusion and passthrough are not part
of it, nor `refit`, `levels` and `selection`: they act after the folds, on the
checkpointed fold models and out-of-fold blocks, and may change between runs sharing a
work_dir (`tests/stacking/test_do_no_harm.py` fits `selection="meta"` on the folds of an
"auto" run).
"""

import hashlib
import inspect

import numpy as np

from kfuse.utils.fingerprints import data_digest, structure_hash, text_hash
from kfuse.utils.jsonable import jsonable as _jsonable


def base_identity(branch, shapes=None):
    """What a branch's base is: the structure of its model or, for a callable, of the
    sub-model the callable builds on `shapes` (so a changed closure, `Dense(4)` to
    `Dense(16)`, is seen); the source text only when no shapes are known."""
    if branch.is_fresh:
        if shapes is not None:
            built = branch.build_model({k: shapes[k] for k in branch.input_names})
            return "callable:" + structure_hash(built)
        try:
            source = inspect.getsource(branch.base)
        except (OSError, TypeError):
            source = getattr(branch.base, "__qualname__", type(branch.base).__name__)
        return "callable-source:" + text_hash(source)
    return "model:" + structure_hash(branch.base)


def fingerprint(branches, trained, methods, plan, seed, head, data):
    """The fingerprint (a JSON-able dict) of a fit of `branches` (those named in `trained`
    trained out-of-fold) on `data` (a `kfuse.stacking.data.StackData`) split by `plan`."""
    splits = hashlib.sha1()
    for _, test in plan.splits:
        splits.update(np.asarray(test, "int64").tobytes())
    return {
        "format": "kfuse.Stacker/1",
        "branches": [
            {
                "name": b.name,
                "base": base_identity(b, data.shapes),
                "inputs": list(b.input_names),
                "trained": b.name in trained,
                "stack_method": methods[b.name],
                "tap": b.tap,
                "select": _jsonable(b.select),
                "readapt": bool(b.readapt),
                "fit": _jsonable(b.fit_settings),
            }
            for b in branches
        ],
        "cv": plan.description,
        "splits": splits.hexdigest()[:16],
        "seed": int(seed),
        "head": _jsonable(head.get_config()),
        "data": data_digest(data.arrays, data.y),
    }
