"""`FusionHyperModel`: a KerasTuner search space over fusion designs of given branches."""

import warnings

import keras
import keras_tuner

from kfuse.branches.branch import Branch
from kfuse.layers import ModalityDropout, fusion_names, get_fusion
from kfuse.layers.heads import get_head
from kfuse.models.graph import check_branches, resolve_input_specs, stack
from kfuse.tuning import cached_trials
from kfuse.tuning.space import Range, as_choices, check_numbers, declare, fusion_accepts

DEFAULTS = {
    "meta_depth": (0, 1, 2),
    "meta_width": (16, 32, 64),
    "meta_dropout": (0.0, 0.2),
    "finetune": (0, 1),
    "learning_rate": Range(1e-4, 1e-2, sampling="log"),
    "modality_dropout": (0.0, 0.2),
}

#: fusions that start as the plain average of class-score branches (`kfuse.models.top`'s warm
#: start), in the order the space's default (the tuner's first trial) prefers them
WARM_FUSIONS = ("average", "concat", "soft_vote", "weighted_average", "median", "trimmed_mean")


class FusionHyperModel(keras_tuner.HyperModel):
    """A `keras_tuner.HyperModel` whose models are kfuse stacks of the given branches.

    `build(hp)` returns a compiled `kfuse.stack` (a `kfuse.FusedModel`). The search space:

    | hyperparameter | what it sets | constructor argument |
    |---|---|---|
    | `fusion` | the fusion operator (names valid for the branch widths) | `fusions` |
    | `meta_depth`, `meta_width`, `meta_dropout` | the meta-learner MLP | same names |
    | `include_<branch>` | which branches are included | `include`, `required` |
    | `finetune_<branch>` | 0 freezes the base; N > 0 fine-tunes its top N weighted layers | `finetune` |
    | `learning_rate` | the optimizer's learning rate | `learning_rate` |
    | `modality_dropout` | `kfuse.layers.ModalityDropout` rate around the fusion | `modality_dropout` |

    Each dimension takes a single value (fixed), a list (a choice) or a
    `kfuse.tuning.Range` (an interval). The defaults of the space (the first trial of
    `kfuse.tuning.make_tuner`'s tuners) are the design that warm-starts as the plain
    average of class-score branches: every branch, the first of "average", "concat",
    "soft_vote", ... among the fusions, no meta-learner (or the widest), frozen bases,
    no dropout, the lowest learning rate. `include=None` searches every non-empty subset
    with one boolean per branch: when a trial draws no branch at all, the first branch is
    included (a deterministic repair). A subset of one branch is used without fusion; if
    the drawn fusion does not accept the drawn subset (say, equal widths), the first
    allowed fusion that does is used. Subclasses extend the space by overriding
    `design(hp)` and `stack_kwargs(hp, design)` (see `notebooks/05_tuning.ipynb`).

    Fast trials: with `cache=True`, a trial whose included branches are all frozen trains
    only the layers above the branches, on branch outputs computed once per data set
    (`kfuse.tuning.cached_trials`); the trained layers are those of the full stack, so
    the tuner's best model is an ordinary kfuse stack that saves, reloads and exports.
    A frozen base is cloned once per hypermodel, not once per trial: every trial's stack
    (and the best model) shares that frozen sub-model. Unfreezing it in a returned model
    changes it for the hypermodel's later trials too; fine-tune a reloaded copy instead
    (`best.save(...)`, `keras.saving.load_model(...)`).

    Args:
        branches (list[Branch]): list of `kfuse.Branch` (pre-trained bases and/or fresh callables).
        head (int | object): an int (classes) or a `kfuse.layers.heads.*` object.
        fusions (list[str] | None): a search dimension (see above).
        meta_depth (int | Sequence[int] | Range): a search dimension (see above).
        meta_width (int | Sequence[int] | Range): a search dimension (see above).
        meta_dropout (float | Sequence[float] | Range): a search dimension (see above).
        include (list[str] | None): a search dimension (see above).
        required (Sequence[str]): a search dimension (see above).
        finetune (int | Sequence[int] | Range | dict): a search dimension (see above), or a dict of
            branch name -> spec.
        learning_rate (float | Sequence[float] | Range): a search dimension (see above).
        modality_dropout (float | Sequence[float] | Range): a search dimension (see above).
        optimizer (str): an optimizer name ("adam", "sgd", ...) built with the drawn learning rate.
        metrics (list | None): extra metrics compiled besides the head's.
        input_shapes (dict | None): input name -> shape for inputs no base declares.
        cache (bool): train all-frozen trials on cached branch outputs.
        name (str): the name of the built models.

    Example:

    ```python
    import keras, keras_tuner, numpy as np, kfuse

    base = keras.Sequential([keras.Input((8,), name="x"), keras.layers.Dense(3, activation="softmax")])
    branches = [kfuse.Branch(base, name="a", output="probabilities"),
                kfuse.Branch(base, name="b", output="logits")]
    hypermodel = kfuse.tuning.FusionHyperModel(branches, head=3, fusions=["concat", "average"])
    tuner = keras_tuner.RandomSearch(hypermodel, objective="val_accuracy", max_trials=2,
                                     directory="/tmp/kfuse_tune", overwrite=True)
    x, y = np.random.rand(64, 8).astype("float32"), np.arange(64) % 3
    tuner.search(x, y, validation_split=0.25, epochs=1, verbose=0)
    best = tuner.get_best_models(1)[0]  # a kfuse.FusedModel
    ```
    """

    def __init__(
        self,
        branches,
        head=None,
        *,
        fusions=None,
        meta_depth=DEFAULTS["meta_depth"],
        meta_width=DEFAULTS["meta_width"],
        meta_dropout=DEFAULTS["meta_dropout"],
        include=None,
        required=(),
        finetune=DEFAULTS["finetune"],
        learning_rate=DEFAULTS["learning_rate"],
        modality_dropout=DEFAULTS["modality_dropout"],
        optimizer="adam",
        metrics=None,
        input_shapes=None,
        cache=True,
        name="kfuse_tuned",
        tunable=True,
    ):
        super().__init__(name=name, tunable=tunable)
        self.branches = check_branches(branches)
        if head is None:
            raise ValueError("FusionHyperModel needs a head (an int of classes or a kfuse.layers.heads.* object)")
        self.head = get_head(head)
        self.input_shapes = input_shapes
        specs = resolve_input_specs(self.branches, input_shapes)
        self._shapes = {key: shape for key, (shape, _) in specs.items()}
        self.output_shapes = {
            b.name: tuple(b.build_model(self._shapes).outputs[0].shape[1:]) for b in self.branches
        }
        self.names = [b.name for b in self.branches]
        self.include, self.required = self._check_subsets(include, required)
        self.fusions = self._check_fusions(fusions)
        check_numbers(meta_depth, "meta_depth", 0, 16, integer=True)
        check_numbers(meta_width, "meta_width", 1, 1 << 16, integer=True)
        check_numbers(meta_dropout, "meta_dropout", 0.0, 0.99)
        check_numbers(learning_rate, "learning_rate", 1e-12, 10.0)
        check_numbers(modality_dropout, "modality_dropout", 0.0, 0.99)
        self.space = {
            "meta_depth": meta_depth,
            "meta_width": meta_width,
            "meta_dropout": meta_dropout,
            "learning_rate": learning_rate,
            "modality_dropout": modality_dropout,
        }
        self.finetune = self._check_finetune(finetune)
        self.optimizer = optimizer
        self.metrics = list(metrics or [])
        self.cache = cached_trials.BranchCache(self.branches, self._shapes) if cache else None
        self._frozen = {}  # branch name -> frozen Branch sharing one sub-model across trials

    # -- checks -------------------------------------------------------------------------
    def _check_names(self, names, argument):
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise ValueError(f"`{argument}` names unknown branch(es) {unknown}; branches: {self.names}")
        return list(names)

    def _check_subsets(self, include, required):
        required = self._check_names([required] if isinstance(required, str) else required, "required")
        if include is None:
            return None, required
        include = self._check_names([include] if isinstance(include, str) else include, "include")
        if not include:
            raise ValueError(
                f"The search space is empty: include=[] leaves no branch; name at least one of {self.names}"
            )
        missing = [n for n in required if n not in include]
        if missing:
            raise ValueError(f"Branches {missing} are required but not in include={include}")
        return include, required

    def _check_fusions(self, fusions):
        names = fusion_names() if fusions is None else as_choices(fusions, "fusions")
        unknown = [n for n in names if n not in fusion_names()]
        if unknown:
            raise ValueError(f"`fusions` names unknown fusion(s) {unknown}; valid names: {fusion_names()}")
        widest = self.include or self.names
        if len(widest) == 1:
            return [names[0]]
        shapes = [self.output_shapes[n] for n in widest]
        valid = [n for n in names if fusion_accepts(n, shapes, widest)]
        if not valid:
            listing = {n: self.output_shapes[n] for n in widest}
            raise ValueError(
                f"The search space is empty: none of the fusions {names} accepts the branch "
                f"outputs {listing}. Fusions that do: "
                f"{[n for n in fusion_names() if fusion_accepts(n, shapes, widest)]}"
            )
        dropped = [n for n in names if n not in valid]
        if dropped and fusions is not None:
            warnings.warn(
                f"FusionHyperModel: fusion(s) {dropped} do not accept the branch outputs "
                f"{ {n: self.output_shapes[n] for n in widest} }; the search leaves them out and tries {valid}", stacklevel=2
            )
        return valid

    def _check_finetune(self, finetune):
        per_branch = finetune if isinstance(finetune, dict) else {}
        if isinstance(finetune, dict):
            self._check_names(list(finetune), "finetune")
        result = {}
        for b in self.branches:
            if b.is_fresh:
                continue  # a fresh branch always trains
            spec = per_branch.get(b.name, DEFAULTS["finetune"]) if per_branch else finetune
            check_numbers(spec, f"finetune for branch '{b.name}'", 0, 10_000, integer=True)
            result[b.name] = spec
        return result

    # -- the space ----------------------------------------------------------------------
    def design(self, hp):
        """Declare the search dimensions in `hp`; return the drawn design as a dict."""
        design = {"branches": self._draw_branches(hp)}
        warm = [f for f in WARM_FUSIONS if f in self.fusions]
        design["fusion"] = declare(hp, "fusion", self.fusions, "fusions", default=(warm or [None])[0])
        depth = declare(hp, "meta_depth", self.space["meta_depth"], default=0)
        width = declare(hp, "meta_width", self.space["meta_width"], default=_widest(self.space["meta_width"]))
        design["meta"] = (width,) * depth
        design["meta_dropout"] = declare(hp, "meta_dropout", self.space["meta_dropout"], default=0.0)
        design["finetune"] = {
            name: declare(hp, f"finetune_{name}", spec, "finetune", default=0) for name, spec in
                self.finetune.items()
        }
        design["learning_rate"] = declare(hp, "learning_rate", self.space["learning_rate"])
        design["modality_dropout"] = declare(hp, "modality_dropout", self.space["modality_dropout"], default=0.0)
        return design

    def _draw_branches(self, hp):
        if self.include is not None:
            return list(self.include)
        drawn = [
            n for n in self.names if n in self.required or hp.Boolean(f"include_{n}", default=True)
        ]
        if not drawn:  # record what runs, not the empty draw
            warnings.warn(f"FusionHyperModel: the trial drew no branch; it runs branch '{self.names[0]}' alone", stacklevel=2)
            hp.values[f"include_{self.names[0]}"] = True
        return drawn or [self.names[0]]

    def fusion_for(self, design):
        """The fusion layer for the drawn branches (None for one branch)."""
        names = design["branches"]
        if len(names) == 1:
            return None
        shapes = [self.output_shapes[n] for n in names]
        chosen = design["fusion"]
        if not fusion_accepts(chosen, shapes, names):
            fallback = [f for f in self.fusions if fusion_accepts(f, shapes, names)]
            if not fallback:
                raise keras_tuner.errors.FailedTrialError(
                    f"No allowed fusion {self.fusions} accepts branches {names} with outputs {shapes}"
                )
            warnings.warn(
                f"FusionHyperModel: fusion {chosen!r} does not accept branches {names} with outputs "
                f"{shapes}; this trial runs {fallback[0]!r} (and records it as its fusion)", stacklevel=2
            )
            chosen = design["fusion"] = fallback[0]
        layer = get_fusion(chosen)
        rate = design.get("modality_dropout") or 0.0
        return ModalityDropout(rate, fusion=layer) if rate > 0 else layer

    def stack_kwargs(self, hp, design):
        """The keyword arguments of `kfuse.stack` for `design` (extend in a subclass)."""
        chosen = [b for b in self.branches if b.name in design["branches"]]
        return {
            "branches": [self._variant(b, design["finetune"].get(b.name)) for b in chosen],
            "fusion": self.fusion_for(design),
            "meta": design["meta"] or None,
            "meta_dropout": design["meta_dropout"],
            "head": self.head,
            "name": self.name,
            "input_shapes": self.input_shapes,
        }

    def _variant(self, branch, finetune):
        """`branch` as the trial asks; a frozen base is cloned once for the whole search."""
        variant = _variant(branch, finetune)
        if variant.trainable or variant.is_fresh:
            return variant
        if variant is branch:  # never change the user's Branch object
            variant = _variant(branch, 0)
        if branch.name not in self._frozen:
            self._frozen[branch.name] = variant._share_frozen_model(self._shapes)
        return self._frozen[branch.name]

    def make_optimizer(self, hp, design):
        return keras.optimizers.get({"class_name": self.optimizer, "config": {"learning_rate": design["learning_rate"]}})

    def compiled_metrics(self):
        """Fresh metric objects: the head's, then the `metrics=` extras."""
        extras = [m if isinstance(m, str) else keras.metrics.deserialize(keras.metrics.serialize(m)) for m in self.metrics]
        return self.head.metrics() + extras

    def metric_names(self, validation=True):
        names = ["loss"] + [m if isinstance(m, str) else m.name for m in self.compiled_metrics()]
        return names + (["val_" + n for n in names] if validation else [])

    def check_objective(self, objective, validation=True):
        """Raise ValueError unless every name in `objective` is a compiled metric (or loss)."""
        available = self.metric_names(validation)
        for name in _objective_names(objective):
            if name not in available:
                hint = "" if validation or not name.startswith("val_") else " (no validation data given)"
                raise ValueError(
                    f"The objective {name!r} is not among the compiled metrics{hint}: {available}. "
                    f"Choose one of them, or add the metric: FusionHyperModel(..., metrics=[...])"
                )

    # -- keras_tuner.HyperModel ------------------------------------------------------------
    def build(self, hp):
        design = self.design(hp)
        model = stack(**self.stack_kwargs(hp, design), compile=False)
        if "fusion" in hp.values:  # the fusion that ran (fusion_for may have replaced the draw)
            hp.values["fusion"] = design["fusion"]
        for name, top in design["finetune"].items():
            if name in model.branch_names and top > 0:
                _unfreeze_top(model.get_layer(name), top)
        model.compile(
            optimizer=self.make_optimizer(hp, design),
            loss=self.head.loss(),
            metrics=self.compiled_metrics(),
        )
        return model

    def fit(self, hp, model, *args, **kwargs):
        validation = kwargs.get("validation_data") is not None or bool(kwargs.get("validation_split"))
        for callback in kwargs.get("callbacks") or []:
            objective = getattr(callback, "objective", None)
            if isinstance(objective, keras_tuner.Objective):
                try:
                    self.check_objective(objective, validation)
                except ValueError as error:
                    raise keras_tuner.errors.FatalValueError(str(error)) from None
        if self.cache is not None and len(args) <= 2 and self.cache.usable(model):
            x = args[0] if args else kwargs.pop("x", None)
            y = args[1] if len(args) > 1 else kwargs.pop("y", None)
            history = cached_trials.fit_cached(model, self.cache, self.compiled_metrics(), x, y, **kwargs)
            if history is not None:
                return history
            args = (x, y)
        return model.fit(*args, **kwargs)


def _widest(spec):
    """The widest meta width of a choice (it carries a warm-started average), else None."""
    return None if isinstance(spec, Range) else max(as_choices(spec, "meta_width"))


def _objective_names(objective):
    if objective is None:
        return []
    if isinstance(objective, str):
        return [objective]
    if isinstance(objective, (list, tuple)):
        return [n for o in objective for n in _objective_names(o)]
    inner = getattr(objective, "objectives", None)
    if inner is not None:
        return _objective_names(list(inner))
    name = getattr(objective, "name", None)
    return [] if name in (None, "default_objective") else [name]


def _variant(branch, finetune):
    """`branch` frozen (finetune 0 / None for a fresh branch: as given) or trainable."""
    if branch.is_fresh or finetune is None:
        return branch
    copy = Branch(
        branch.base,
        name=branch.name,
        inputs={k: branch.input_shapes.get(k) for k in branch.input_names},
        trainable=finetune > 0,
        tap=branch.tap,
        output=branch.output,
        fit=branch.fit_settings,
        select=branch.select,
        readapt=branch.readapt,
        pool=branch.pool,
        copy=branch.copy,
    )
    copy.source = branch.source
    return copy


def _unfreeze_top(submodel, top):
    """Leave only the top `top` weighted layers of a branch sub-model trainable."""
    weighted = [layer for layer in submodel.layers if layer.weights]
    for layer in weighted[: max(len(weighted) - top, 0)]:
        layer.trainable = False
