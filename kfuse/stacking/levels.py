"""`levels=2`: level-2 learners trained out-of-fold on the level-1 out-of-fold outputs.

As in AutoGluon's multi-layer stacking, each level-2 learner sees every level-1 base's
out-of-fold outputs (and, with `passthrough=True`, the raw inputs); its own out-of-fold
outputs train the final meta-learner and head. In the graph, the level-1 bases, the
concatenation and the level-2 learners form one frozen branch named "level2".

The level-2 folds over the level-1 OOF rows are a shuffled (Stratified)KFold (the
Stacker's int `cv`, else 5 folds). When the Stacker's `cv` keeps time order (a
`TimeSeriesSplit`; `kfuse.stacking.folds.time_ordered`) they are forward in time instead
(`kfuse.stacking.folds.forward_folds`: `TimeSeriesSplit(5)` over the OOF rows in time
order, with the outer `gap`), so no later row trains a level-2 learner whose prediction
feeds an earlier row. Those splits never hold out the earliest chunk of the OOF rows: it
has no level-2 OOF prediction (NaN in `oof`), and `rows` (the rows that have one) is where
the final meta-learner trains and the Stacker's selection is scored. For k-fold, `rows`
is every level-1 OOF row.
"""

import keras
import numpy as np

from kfuse.branches.branch import Branch
from kfuse.branches.outputs import head_loss
from kfuse.stacking.cache import fit_top
from kfuse.stacking.folds import forward_folds, kfold, time_ordered
from kfuse.utils.optimizers import new_optimizer
from kfuse.utils.outputs import score

#: level-2 learners: name -> hidden widths (() is a regularised linear model)
LEARNERS = {"l2_linear": (), "l2_mlp": (64,)}
L2_PENALTY = 1e-4
#: level-2 folds unless the Stacker's cv is an int
LEVEL2_FOLDS = 5


def _learner(name, widths, width, head):
    inp = keras.Input((width,), name=f"{name}_in")
    x = inp
    for i, units in enumerate(widths):
        x = keras.layers.Dense(units, activation="relu", name=f"{name}_dense{i}")(x)
        x = keras.layers.Dropout(0.2, name=f"{name}_dropout{i}")(x)
    out = keras.layers.Dense(
        head.units,
        activation=head.activation,
        kernel_regularizer=keras.regularizers.L2(L2_PENALTY),
        name=f"{name}_out",
    )(x)
    return keras.Model(inp, out, name=name)


def _flat(a):
    a = np.asarray(a, "float32")
    return a.reshape(len(a), -1)


class LevelTwo:
    """Trains the level-2 learners on level-1 `features` (rows `rows`), with the
    `TopSettings` of one Stacker fit (`self.settings`)."""

    def __init__(self, settings, features, y, rows, arrays):
        self.settings = settings
        head = settings.head
        parts = [_flat(features[n]) for n in settings.branch_names]
        if settings.passthrough:
            parts += [_flat(arrays[k]) for k in settings.input_names]
        matrix = np.concatenate(parts, axis=1)[rows]
        labels = y[rows]
        splits = self._splits(rows)
        held = np.zeros(len(rows), bool)
        for _, te in splits:
            held[te] = True
        settings = settings.fit_settings(len(rows))
        optimizer = settings.pop("optimizer")
        learning_rate = settings.pop("learning_rate")
        blocks, self.learners, self.cv_scores = [], {}, {}
        for j, (name, widths) in enumerate(LEARNERS.items()):
            block = np.zeros((len(rows), head.units), "float32")
            scores = []
            for k, (tr, te) in enumerate(splits):
                model = self._fit(
                    name, widths, matrix, labels, tr, optimizer, learning_rate, settings, k * 31 + j
                )
                block[te] = model.predict(matrix[te], batch_size=1024, verbose=0)
                scores.append(score(head.activation, block[te], labels[te]))
            self.cv_scores[name] = scores
            self.learners[name] = self._fit(
                name, widths, matrix, labels, None, optimizer, learning_rate, settings, 997 + j
            )
            blocks.append(block)
        # rows no level-2 fold held out (the earliest chunk under forward-in-time folds)
        # stay NaN, and are left out of `rows`: never filled in
        self.rows = np.asarray(rows)[held]
        full = np.full((len(y), head.units * len(LEARNERS)), np.nan, "float32")
        full[self.rows] = np.concatenate(blocks, axis=1)[held]
        self.oof = {"level2": full}
        self.width = matrix.shape[1]

    def _splits(self, rows):
        """The level-2 folds over the OOF `rows`: (train, held-out) positions into `rows`."""
        cv = self.settings.cv
        if time_ordered(cv):
            splits, reason = forward_folds(LEVEL2_FOLDS, rows, getattr(cv, "gap", 0))
            if splits is None:
                raise ValueError(
                    f"Stacker(levels=2, cv={cv!r}): {reason} for the level-2 learners (they "
                    "train on earlier rows and predict later ones). Pass more rows, fewer "
                    "outer splits or a smaller gap, or use levels=1."
                )
            return splits
        k = cv if isinstance(cv, int) and not isinstance(cv, bool) else LEVEL2_FOLDS
        strata = None if self.settings.strata is None else self.settings.strata[rows]
        return kfold(k, strata, len(rows), self.settings.seed + 1)

    def _fit(self, name, widths, matrix, labels, rows, optimizer, learning_rate, settings, offset):
        head, seed = self.settings.head, self.settings.seed * 7919 + offset
        keras.utils.set_random_seed(seed)
        model = _learner(name, widths, matrix.shape[1], head)
        model.compile(
            optimizer=new_optimizer(optimizer, learning_rate),
            loss=head_loss(model, head, f"Branch '{name}'"),
        )
        x, t = (matrix, labels) if rows is None else (matrix[rows], labels[rows])
        fit_top(model, x, t, seed=seed, verbose=0, **settings)
        return model

    def branch(self, branches, shapes):
        """The frozen branch "level2" of the final graph: inputs -> level-1 `branches` ->
        level-2 learners (the head goes on top of it)."""
        names = list(self.settings.input_names)
        inputs = {k: keras.Input(shape=shapes[k], name=k) for k in names}
        outs = []
        for b in branches:
            sub = b.build_model(shapes)
            args = [inputs[k] for k in b.input_names]
            structure = sub.input
            if isinstance(structure, dict):
                args = dict(zip(structure, args, strict=True))
            elif len(args) == 1:
                args = args[0]
            out = sub(args)
            outs.append(keras.layers.Flatten()(out) if len(out.shape) > 2 else out)
        if self.settings.passthrough:
            outs += [
                keras.layers.Flatten()(inputs[k]) if len(inputs[k].shape) > 2 else inputs[k]
                for k in names
            ]
        level1 = keras.layers.Concatenate(name="level1")(outs) if len(outs) > 1 else outs[0]
        level2 = [self.learners[n](level1) for n in LEARNERS]
        out = keras.layers.Concatenate(name="level2_outputs")(level2)
        base = keras.Model([inputs[k] for k in names], out, name="level2")
        return Branch(base, name="level2", inputs=names, trainable=False, output="raw")
