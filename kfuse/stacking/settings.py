"""Stacker defaults and argument checks: the head, stack_method, meta-learner training."""

import difflib

import keras

from kfuse.layers.heads import Classification, get_head

#: how the meta-learner and head train on the (cached) meta-features
#: ("auto" batch size: rows // 16, between 16 and 256, so few rows still get many steps)
META_FIT_DEFAULTS = {
    "epochs": 100,
    "batch_size": "auto",
    "optimizer": "adam",
    "learning_rate": 1e-2,
    "shuffle": True,
    "class_weight": None,
}
#: L2 penalty of the default head when meta=None: a logistic regression on the features
DEFAULT_L2 = 1e-4
STACK_METHODS = ("auto", "predict_proba", "logits", "features", "raw")


def default_head(head, meta):
    """Resolve `head`; an int head with no meta-learner gets a small L2 penalty."""
    if isinstance(head, (int,)) and not isinstance(head, bool) and head >= 2 and meta is None:
        return Classification(head, kernel_regularizer=keras.regularizers.L2(DEFAULT_L2))
    return get_head(head)


def resolve_method(stack_method, branch, head):
    """The meta-feature kind of one branch: predict_proba, logits, features or raw."""
    if stack_method not in STACK_METHODS:
        close = difflib.get_close_matches(str(stack_method), STACK_METHODS, n=2)
        raise ValueError(
            f"Stacker: stack_method must be one of {STACK_METHODS}; received {stack_method!r}"
            + (f". Did you mean {close}?" if close else "")
        )
    method = stack_method
    if method == "auto":
        if branch.tap is not None:
            return "features"
        if branch.output == "probabilities":
            return "predict_proba"
        if branch.output == "logits":
            return "logits"
        if branch.is_fresh and not branch.trainable:
            return "raw"
        return "predict_proba" if head.activation is not None else "raw"
    if method in ("predict_proba", "logits") and head.activation is None:
        raise ValueError(
            f"Branch '{branch.name}': stack_method={method!r} needs a classification head; "
            f"the head {head} is a regression head. Use 'raw' or 'features'."
        )
    if method == "features" and branch.tap is None and not branch.is_fresh:
        raise ValueError(
            f"Branch '{branch.name}': stack_method='features' needs a layer to tap; give "
            "the branch tap='layer_name'"
        )
    return method


def check_meta_fit(meta_fit):
    settings = dict(META_FIT_DEFAULTS)
    for key, value in (meta_fit or {}).items():
        if key not in META_FIT_DEFAULTS:
            raise ValueError(
                f"Stacker: meta_fit key {key!r} is unknown; valid keys: {sorted(META_FIT_DEFAULTS)}"
            )
        settings[key] = value
    return settings


def meta_batch_size(batch_size, rows):
    """Resolve the meta-learner's batch size for `rows` training rows."""
    if batch_size == "auto":
        return int(min(256, max(16, rows // 16)))
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            f"Stacker: meta_fit batch_size must be a positive int or 'auto'; received {batch_size!r}"
        )
    return batch_size
