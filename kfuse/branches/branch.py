"""`Branch`: one base network as a named, optionally frozen, part of a fused graph."""

import copy
import difflib
import os

import keras

from kfuse.branches.class_copy import nested, rebuilt_by_class
from kfuse.branches.differences import branch_base_differences  # noqa: F401 (re-exported)
from kfuse.branches.inputs import has_inputs, own_input_names, wrap_unbuilt
from kfuse.branches.lora import apply_lora, check_lora
from kfuse.branches.outputs import (
    OUTPUT_KINDS,
    check_select,
    convert_output,
    select_outputs,
)
from kfuse.branches.presets import load_base_path
from kfuse.branches.sequence_pool import check_pool, pool_sequence
from kfuse.branches.state import clone_with_state, readapt_preprocessing  # noqa: F401 (re-exported)
from kfuse.utils.names import check_name


def _normalise_inputs(inputs, branch_name):
    """`inputs=` as (list of names, dict of name -> declared shape or None)."""
    if inputs is None:
        return None, {}
    if isinstance(inputs, str):
        return [inputs], {inputs: None}
    if isinstance(inputs, dict):
        shapes = {}
        for key, shape in inputs.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"Branch '{branch_name}': input names must be str; received {key!r}"
                )
            shapes[key] = None if shape is None else tuple(shape)
        return list(inputs), shapes
    if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(i, str) for i in inputs):
        if len(set(inputs)) != len(inputs):
            raise ValueError(f"Branch '{branch_name}': input names repeat in {list(inputs)}")
        return list(inputs), {i: None for i in inputs}
    raise TypeError(
        f"Branch '{branch_name}': `inputs` must be a name, a list of names or a dict of "
        f"name -> shape; received {inputs!r}"
    )


class Branch:
    """One base network of a fused model.

    A branch is a specification: `kfuse.stack` builds it into the graph as a sub-model
    named `name`, so every layer and weight of the branch lives under that name
    (`model.get_layer("cnn")`, weights `cnn/...`). Bases given as models or files are
    cloned with their weights, so the user's own model is never changed and two copies
    of one backbone never share or clash. The copy keeps what preprocessing layers
    learned through `adapt()` (vocabularies, IDF weights, normalisation statistics, bin
    boundaries; see `kfuse.branches.state`), so a branch computes exactly what its base
    computes, in memory, after a `.keras` round trip and in a SavedModel.

    Args:
        base (keras.Model | str | os.PathLike | Callable): a `keras.Model` (a KerasHub `Backbone` or
            `Task` too); a path to a `.keras` file (loaded with `safe_mode=True`) or to a KerasHub
            preset directory written by `save_to_preset` (loaded offline, see `kfuse.branches.presets`);
            or a callable that builds a fresh network on the branch's input tensor (a dict of
            tensors when the branch reads several inputs) and returns its output.
        name (str): unique branch name.
        inputs (str | list[str] | dict | None): the named model input(s) the branch reads: a name, a
            list of names (matched in order to the base's inputs) or a dict of name -> shape without
            the batch axis. Default: the base model's own input names (an auto-generated one,
            `keras_tensor_22` or `input_layer_3`, becomes `<name>_input`). A base without symbolic
            inputs (an unbuilt Sequential, a subclassed model) needs the dict form: kfuse calls it
            on `keras.Input`s of those shapes.
        trainable (bool): False freezes the branch; BatchNormalization then runs in inference mode.
        tap (str | None): name of a layer inside the base whose output is used instead of the final
            output (intermediate / hybrid fusion).
        output (str): what the branch hands to fusion: "raw" (the base's output as it is),
            "probabilities" or "logits". See `kfuse.branches.outputs` for how each is
            obtained from a base's final activation, or refused. As a shorthand,
            `output=<an output name, an index or a list of them>` means
            `select=<that>, output="raw"`.
        select (str | int | list | None): for a base with several outputs, which to hand over: an
            output name (a dict key of the base's outputs, or the name of the layer producing it),
            an index, or a list of them (each converted to `output`, flattened and concatenated). A
            multi-output base without it is refused, listing its outputs. Why a separate argument:
            `output` already names a *kind* ("logits"...), and a base may well have an output named
            "logits"; `select` says *which* outputs, `output` *what* of them, so both stay
            unambiguous.
        pool (str | None): pool a sequence output (batch, tokens, features) to (batch, features)
            inside the branch: "mean", "masked_mean" (over the base's `padding_mask`), "first"
            (BERT's [CLS], ViT's class token) or "last" (the last non-padding token, a decoder's).
            See `kfuse.branches.sequence_pool`. Example: `Branch(bert_backbone, name="bert",
            select="sequence_output", pool="masked_mean")`.
        lora_rank (int | None): fine-tune a KerasHub backbone (or a Task's backbone) through LoRA of
            this rank (`Backbone.enable_lora`, on the branch's copy): its weights stay
            frozen and only the low-rank adapters train. See `kfuse.branches.lora`.
        readapt (bool): in a `Stacker`, re-adapt the base's preprocessing layers on each fold's
            own training rows (leak-free). By default a fold clone keeps the base's
            adapted state, whose statistics saw every row the base was adapted on.
        fit (dict | None): optional dict of per-branch training settings (optimizer, epochs,
            batch_size, callbacks...) used by `kfuse.Stacker` when it trains this base.
        copy (bool): True (the default) builds the branch on a copy of `base`, so your model
            is never altered. False builds it on `base`'s own layers: no copy (faster, half the
            memory of a large base), but `trainable=False` then freezes `base`'s layers, and
            every graph built from the branch shares them. kfuse's ensembles use it for the
            members they made themselves.

    Example:

    ```python
    import keras
    import kfuse

    cnn = keras.Sequential([keras.Input((40,)), keras.layers.Dense(10, activation="softmax")])
    b1 = kfuse.Branch(cnn, name="cnn", inputs="signal", trainable=False, output="logits")
    b2 = kfuse.Branch(lambda x: keras.layers.Dense(32, activation="relu")(x), name="mlp",
                      inputs="signal")
    inp = keras.Input((40,), name="signal")
    two = keras.Model(inp, {"label": keras.layers.Dense(10, activation="softmax")(inp),
                            "size": keras.layers.Dense(1)(inp)})
    b3 = kfuse.Branch(two, name="two", select="label", output="logits")
    model = kfuse.stack([b1, b2, b3], fusion="concat", head=10)
    ```
    """

    def __init__(
        self, base, name, inputs=None, trainable=True, tap=None, output="raw", fit=None,
        select=None, readapt=False, pool=None, lora_rank=None, copy=True,
    ):  # fmt: skip
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(
                f"Branch `name` must be a non-empty str without '/'; received {name!r}"
            )
        self.name = check_name(name, "branch")
        if output not in OUTPUT_KINDS and select is None and not isinstance(output, bool):
            if isinstance(output, (int, list, tuple)) or (
                isinstance(output, str) and isinstance(base, (keras.Model, str, os.PathLike))
            ):
                select, output = output, "raw"  # output=<name / index / list>: a selection
        if output not in OUTPUT_KINDS:
            raise ValueError(
                f"Branch '{name}': `output` must be one of {OUTPUT_KINDS} (or an output name, "
                f"index or list of them, for a base with several outputs); received {output!r}"
            )
        self.output = output
        self.select = check_select(select, name)
        self.trainable = bool(trainable)
        self.tap = tap
        self.readapt = bool(readapt)
        self.pool = pool
        self.fit_settings = dict(fit or {})
        self.copy = bool(copy)
        self.source = None
        self._shared_model = None
        if isinstance(base, (str, os.PathLike)):
            self.source = os.fspath(base)
            base = load_base_path(base, name)  # a .keras file or a KerasHub preset directory
        if isinstance(base, keras.Model):
            self.base = base
            self.is_fresh = False
        elif callable(base):
            self.base = base
            self.is_fresh = True
            if tap is not None:
                raise ValueError(
                    f"Branch '{name}': tap= needs a base model; a callable branch has no layers yet"
                )
            if output != "raw" or self.select is not None:
                raise ValueError(
                    f"Branch '{name}': output={output!r} / select= need a base model whose "
                    "outputs kfuse can read; a callable branch hands over what it returns "
                    "(output='raw'). Put the activation you want in the callable."
                )
        else:
            raise TypeError(
                f"Branch '{name}': `base` must be a keras.Model, a path to a .keras file or a "
                f"callable; received {type(base).__name__}"
            )
        if not self.copy and (self.is_fresh or lora_rank is not None):
            raise ValueError(
                f"Branch '{name}': copy=False builds on a base model's own layers; "
                + ("a callable branch builds a new network" if self.is_fresh
                   else "lora_rank= adds adapters to a copy") + ": leave copy=True"
            )
        self.lora_rank = check_lora(lora_rank, None if self.is_fresh else base, name, trainable)
        names, declared = _normalise_inputs(inputs, name)
        if not self.is_fresh and not has_inputs(self.base):
            self.base = wrap_unbuilt(self.base, names, declared, name)
        base_specs = self._base_input_specs()
        if names is None:
            if base_specs is None:
                raise ValueError(f"Branch '{name}': a callable branch needs `inputs=`")
            names = own_input_names([n for n, _, _ in base_specs], name)
        if base_specs is not None and len(base_specs) != len(names):
            raise ValueError(
                f"Branch '{name}': the base takes {len(base_specs)} input(s) "
                f"{[(n, s) for n, s, _ in base_specs]} but inputs={names} names {len(names)}"
            )
        self.input_names = [check_name(n, "input") for n in names]
        self.input_shapes = {}
        self.input_dtypes = {}
        for i, key in enumerate(names):
            base_shape = base_specs[i][1] if base_specs else None
            shape = declared.get(key)
            if shape is not None and base_shape is not None and not shapes_agree(shape, base_shape):
                raise ValueError(
                    f"Branch '{name}': input '{key}' is declared with shape {shape} but the "
                    f"base expects {base_shape}"
                )
            self.input_shapes[key] = shape if shape is not None else base_shape
            self.input_dtypes[key] = base_specs[i][2] if base_specs else None
        if tap is not None:
            self._check_tap(tap)
        if not self.is_fresh and tap is None:
            chosen = select_outputs(self.base, self.select, name)  # several: refused now
            check_pool(pool, name, self.base, chosen[0][1] if len(chosen) == 1 else None)
        else:
            check_pool(pool, name, None if self.is_fresh else self.base,
                       None if tap is None else self.base.get_layer(tap).output)  # fmt: skip

    # -- inspection -------------------------------------------------------------------
    def _base_input_specs(self):
        """[(name, shape without batch, dtype)] of a base model, or None for a callable."""
        if self.is_fresh:
            return None
        return [(t.name, tuple(t.shape[1:]), t.dtype) for t in self.base.inputs]

    def _check_tap(self, tap):
        names = [layer.name for layer in self.base.layers]
        if tap not in names:
            close = difflib.get_close_matches(tap, names, n=5, cutoff=0.4)
            raise ValueError(
                f"Branch '{self.name}': tap={tap!r} names no layer of the base. "
                f"Closest: {close or 'none'}; all layers: {names}"
            )

    @property
    def output_kind(self):
        """What this branch hands to fusion: 'raw', 'probabilities', 'logits' or 'features'."""
        return "features" if self.tap is not None else self.output

    # -- building ---------------------------------------------------------------------
    def build_model(self, input_shapes):
        """A fresh sub-model named after the branch; `input_shapes` maps name -> shape."""
        if self._shared_model is not None:
            return self._shared_model
        with keras.name_scope(self.name):
            if self.is_fresh:
                model = self._build_fresh(input_shapes)
            else:
                model = self._build_from_base()
        model.trainable = self.trainable
        if self.lora_rank is not None:
            apply_lora(model, self.lora_rank, self.name)  # after: trainable=True unfreezes all
        return model

    def built_frozen(self, input_shapes):
        """A callable branch built once (`build_model`) and frozen: a copy of this branch
        over the built model, used as it is (trainable=False, no fit settings).

        The constructor's checks ran on this branch already and hold for the copy (a
        callable has no tap, selection, pool or LoRA, and hands over what it returns), so
        they are not run again: only what the build settled changes, the base and the
        shapes and dtypes of its `keras.Input`s.

        Example:

        ```python
        import keras, kfuse

        branch = kfuse.Branch(lambda t: keras.layers.Dense(2)(t), name="c", inputs="x", trainable=False)
        frozen = branch.built_frozen({"x": (4,)})
        frozen.is_fresh, frozen.input_shapes  # (False, {'x': (4,)})
        ```
        """
        if not self.is_fresh:
            raise ValueError(f"Branch '{self.name}': built_frozen builds a callable branch; this one is a model")
        model = self.build_model(input_shapes)
        if [t.name for t in model.inputs] != self.input_names:
            # a model's inputs are matched to the branch's input names in order, and Keras
            # lists a dict of inputs sorted by name: list them in the branch's order
            model = keras.Model([model.input[k] for k in self.input_names], model.output, name=self.name)
            model.trainable = False
        frozen = copy.copy(self)
        frozen.base, frozen.is_fresh, frozen.trainable = model, False, False
        frozen.fit_settings, frozen.readapt, frozen._shared_model = {}, False, None
        tensors = {t.name: t for t in model.inputs}
        frozen.input_names = list(self.input_names)
        frozen.input_shapes = {k: tuple(tensors[k].shape[1:]) for k in self.input_names}
        frozen.input_dtypes = {k: tensors[k].dtype for k in self.input_names}
        return frozen

    def _share_frozen_model(self, input_shapes):
        """Build the sub-model once; every later stack of this branch reuses it.

        For searches that build many stacks of the same frozen base: the base is cloned
        once instead of once per stack. Only for frozen branches, whose weights no stack
        changes.
        """
        if self.trainable:
            raise ValueError(f"Branch '{self.name}': only a frozen branch can share its sub-model")
        self._shared_model = None
        self._shared_model = self.build_model(input_shapes)
        return self

    def _build_fresh(self, input_shapes):
        tensors = {
            key: keras.Input(shape=input_shapes[key], name=key, dtype=self.input_dtypes.get(key))
            for key in self.input_names
        }
        arg = tensors[self.input_names[0]] if len(tensors) == 1 else dict(tensors)
        out = self.base(arg)
        if not isinstance(out, keras.KerasTensor):
            raise TypeError(
                f"Branch '{self.name}': the callable must return one Keras tensor; "
                f"received {type(out).__name__}"
            )
        return keras.Model(tensors, out, name=self.name)

    def _clone_base(self, weights=True):
        try:
            return clone_with_state(self.base, weights=weights)
        except Exception as error:
            raise TypeError(
                f"Branch '{self.name}': could not copy the base model '{self.base.name}' "
                f"({type(error).__name__}: {error}). A subclassed model or layer inside it needs "
                "get_config() returning its constructor arguments (and from_config, for "
                "arguments that are not plain values) so kfuse can rebuild it; functional "
                "and Sequential models of built-in layers always copy."
            ) from error

    def _build_from_base(self):
        clone = self._clone_base() if self.copy else self.base
        if self.tap is None and rebuilt_by_class(clone):
            clone = nested(clone)  # a hub backbone / task stays one layer, rebuilt by its class
        out, _ = convert_output(clone, self.output, self.name, tap=self.tap, select=self.select)
        if self.pool is not None:
            out = pool_sequence(clone, out, self.pool, self.name)
        elif self.tap is None and len(out.shape) == 3 and out.shape[1] == 1:
            # (None, 1, k) symbolically, (batch, k) in fact (a string Input((1,)) through
            # TextVectorization, say): (batch, k) either way, as the head takes it
            out = keras.layers.Reshape((out.shape[2],), name=f"{self.name}_squeeze")(out)
        return keras.Model(clone.inputs, out, name=self.name)

    def fresh_base(self):
        """A copy of the base with fresh weights that keeps its preprocessing state.

        The model a `Stacker` fold trains (a multi-output base reduced to its `select`ed
        outputs): every weight re-initialised, but vocabularies and normalisation
        statistics learned by `adapt()` kept (they saw every row the
        base was adapted on; `Branch(..., readapt=True)` re-adapts them on the fold's own
        training rows instead, see `readapt_preprocessing`).
        """
        if self.is_fresh:
            raise ValueError(f"Branch '{self.name}': a callable branch has no base to copy")
        clone = self._clone_base(weights=False)
        if self.select is None:
            return clone
        out, _ = convert_output(clone, "raw", self.name, select=self.select)
        return keras.Model(clone.inputs, out, name=clone.name)  # the selected output(s)

    def __call__(self, tensors, input_shapes=None):
        """Build the sub-model and call it on `tensors` (dict of input name -> tensor)."""
        shapes = input_shapes or {k: tuple(v.shape[1:]) for k, v in tensors.items()}
        model = self.build_model(shapes)
        args = [tensors[key] for key in self.input_names]
        structure = model.input
        if isinstance(structure, dict):
            args = dict(zip(structure.keys(), args, strict=True))
        elif len(args) == 1:
            args = args[0]
        return model(args), model

    def __repr__(self):
        kind = "fresh" if self.is_fresh else (self.source or type(self.base).__name__)
        return (
            f"Branch(name={self.name!r}, base={kind}, inputs={self.input_names}, "
            f"trainable={self.trainable}, tap={self.tap!r}, output={self.output!r}"
            + (f", select={self.select!r}" if self.select is not None else "")
            + (", readapt=True" if self.readapt else "")
            + (f", pool={self.pool!r}" if self.pool is not None else "")
            + (f", lora_rank={self.lora_rank}" if self.lora_rank is not None else "")
            + ")"
        )


def shapes_agree(a, b):
    """Whether two shapes without the batch axis match, None matching any size."""
    if len(a) != len(b):
        return False
    return all(x is None or y is None or x == y for x, y in zip(a, b, strict=True))
