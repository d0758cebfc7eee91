"""compare()'s self-check: does each branch of a fused model still compute its base?

A branch copies its base exactly (weights and adapted preprocessing state), so when
`compare` is given a fused model and, under a branch's name, that branch's base, their
outputs on the same rows must agree to float noise. A larger gap means the copy lost
state (an un-adapted vectorizer, normalisation statistics left at 0 / 1): the report
says so instead of scoring a silently different model.
"""

import keras

from kfuse.branches.differences import branch_base_differences
from kfuse.evaluation.running import fused_model
from kfuse.inputs.values import is_dataset

#: the largest branch-vs-base gap read as float noise
TOLERANCE = 1e-4


def branch_drift(models, x, batch_size=256):
    """{fused model name: {branch name: largest |branch - base|}} for every branch whose
    base is also among `models` under the branch's name; `x` numpy data (a dataset: {}).

    Example:

    ```python
    import keras, numpy as np, kfuse
    from kfuse.evaluation.self_check import branch_drift

    base = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2)])
    fused = kfuse.stack([kfuse.Branch(base, name="b")], head=2)
    gaps = branch_drift({"b": base, "fused": fused}, np.ones((3, 4), "float32"))
    assert gaps["fused"]["b"] < 1e-5
    ```
    """
    if x is None or is_dataset(x):
        return {}
    found = {}
    for name, model in models.items():
        fused = fused_model(model)
        if fused is None:
            continue
        bases = {
            n: m for n, m in models.items()
            if n != name and isinstance(m, keras.Model) and fused_model(m) is None
        }
        gaps = branch_base_differences(fused, bases, x, batch_size=batch_size) if bases else {}
        if gaps:
            found[name] = gaps
    return found


def expected_difference(model, branch):
    """Why branch ``branch`` of ``model`` (a fused model or a fitted Stacker) need not
    equal its base, in words, or ``None`` where it is a frozen, unchanged copy.

    Example:

    ```python
    import keras, kfuse
    from kfuse.evaluation.self_check import expected_difference
    base = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2)])
    fused = kfuse.stack([kfuse.Branch(base, name="b", trainable=False)], head=2)
    print(expected_difference(fused, "b"))  # None: meant to equal its base
    ```
    """
    fused = fused_model(model)
    stacker = fused.kfuse_info.get("stacker") if fused is not None else None
    if stacker is not None:
        trained = stacker.get("trained")
        if trained is None or branch in trained:  # (a Stacker saved before "trained": may be)
            how = ("on every row (refit=True)" if stacker.get("refit")
                   else "on folds (refit=False: the average of its fold models)")
            return f"trained by the Stacker {how}"
    if fused is not None and branch in fused.branch_names and fused.branch(branch).trainable:
        return "trainable in the fused model (fit / fine-tuning changes it)"
    return None


def drift_notes(drift, models=None):
    """One note per branch whose outputs differ from its base's beyond float noise: an
    alarm where the branch was meant to equal its base (frozen, copied unchanged), and
    what differs otherwise (a branch the Stacker trained, a trainable branch)."""
    notes = []
    for model, gaps in drift.items():
        for branch, gap in gaps.items():
            if gap <= TOLERANCE:
                continue
            head = (f"self-check: branch '{branch}' of '{model}' differs from the base "
                    f"'{branch}' by up to {gap:.3g} on the same rows")
            reason = expected_difference(models[model], branch) if models else None
            if reason is None:
                notes.append(f"{head} (float noise is < {TOLERANCE:g}), though a frozen copy "
                             "must equal it: the branch copy lost state (e.g. adapted "
                             "preprocessing); rebuild the fused model from the base")
            else:
                notes.append(f"{head}: it was {reason}; not expected to equal the base")
    return notes
