"""Stacker defaults and argument checks: the head, stack_method, meta-learner training."""

import difflib
from dataclasses import dataclass, field

import keras

from kfuse.distribute.strategy import entered_scope
from kfuse.layers.heads import Classification, get_head
from kfuse.models.graph import check_branches
from kfuse.stacking.base_training import check_fit_settings
from kfuse.trainers.threads import resolve_n_jobs

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


def resolve_arguments(branches, head, meta, levels, meta_fit, n_jobs, stack_method, refit):
    """(branches, head, methods, meta_fit) checked from the `Stacker`'s arguments: a
    clear error at construction for each bad one; nothing is stored."""
    branches = check_branches(branches)
    if head is None:
        raise ValueError(
            "Stacker needs head= (an int number of classes or a kfuse.layers.heads.* object)"
        )
    head = default_head(head, meta)
    if levels not in (1, 2):
        raise ValueError(f"Stacker: levels must be 1 or 2; received {levels!r}")
    meta_fit = check_meta_fit(meta_fit)
    resolve_n_jobs(n_jobs)
    methods = {b.name: resolve_method(stack_method, b, head) for b in branches}
    for b in branches:
        check_fit_settings(b)
        if b.trainable and methods[b.name] == "features":
            raise ValueError(
                f"Branch '{b.name}': stack_method='features' on a branch trained per fold "
                "is refused: the fold models' hidden units do not share one space (with each "
                f"other, nor with the refit model; refit={refit}). Use "
                "stack_method='predict_proba' / 'logits', or freeze the branch (trainable=False)."
            )
    return branches, head, methods, meta_fit


def check_prefit(branches):
    """`cv="prefit"` uses the bases as they are: a branch that is a callable is refused."""
    for b in branches:
        if b.is_fresh:
            raise ValueError(
                f"Stacker(cv='prefit'): branch '{b.name}' is a callable, not a built "
                "and trained keras.Model; prefit uses the bases as they are. Train it "
                "first, or use cv=5."
            )


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


@dataclass(frozen=True)
class TopSettings:
    """What training and choosing the top needs from one `Stacker.fit`, resolved once.

    The top is the fusion, meta-learner and head above the branches. The selection
    (`kfuse.stacking.selection`), the level-2 learners (`kfuse.stacking.levels`) and the
    training of the top read these values; none of them reads the `Stacker` itself.

    Args:
        head (kfuse.layers.heads.Head): the resolved head.
        meta_fit (dict): the checked `meta_fit` settings (`check_meta_fit`).
        seed (int): the Stacker's resolved seed.
        cv (object): the Stacker's `cv` argument, as given.
        selection (str): the Stacker's `selection` argument.
        branches (tuple): the checked branches, in order.
        methods (dict): branch name -> its stack method.
        sample_weight (numpy.ndarray | None): the row weights of the fit.
        strategy (object | None): the resolved `tf.distribute` strategy, or None.
        name (str): the fused model's name.
        passthrough (bool): whether the raw inputs reach the top too.
        input_names (tuple): the model's input names, in order.
        strata (numpy.ndarray | None): what the outer folds stratify on, one per training
            row (`kfuse.stacking.folds.strata`: class ids, a binary label), or None.

    Example:

    ```python
    import kfuse
    from kfuse.stacking.settings import TopSettings, check_meta_fit

    settings = TopSettings(kfuse.layers.heads.Classification(3), check_meta_fit(None), seed=0, cv=5)
    settings.meta_fit["epochs"]  # 100
    ```
    """

    head: object
    meta_fit: dict
    seed: int
    cv: object
    selection: str = "auto"
    branches: tuple = ()
    methods: dict = field(default_factory=dict)
    sample_weight: object = None
    strategy: object = None
    name: str = "kfuse_stacker"
    passthrough: bool = False
    input_names: tuple = ()
    strata: object = None

    @property
    def branch_names(self):
        """The branch names, in order."""
        return [b.name for b in self.branches]

    def scope(self):
        """The scope of the strategy (a null context without one, or inside it already)."""
        return entered_scope(self.strategy)

    def fit_settings(self, rows):
        """`meta_fit` as `fit_top` takes it for `rows` training rows: None values dropped,
        the "auto" batch size resolved; still with its `optimizer` and `learning_rate`."""
        settings = {k: v for k, v in self.meta_fit.items() if v is not None}
        settings["batch_size"] = meta_batch_size(settings["batch_size"], rows)
        return settings
