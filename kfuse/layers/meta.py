"""Meta-learner builders: what sits between the fusion layer and the head."""

import keras


def apply_meta(meta, x, dropout=0.0, activation="relu"):
    """Apply `meta` to tensor `x`.

    `meta` is None (nothing), a tuple/list of hidden widths (Dense + optional Dropout per
    width, layers named meta_dense_0, meta_dropout_0, ...), or any Keras layer, model or
    callable taking and returning one tensor.
    """
    if meta is None:
        return x
    if isinstance(meta, int) and not isinstance(meta, bool):
        meta = (meta,)
    if isinstance(meta, (tuple, list)):
        if not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in meta):
            raise ValueError(f"`meta` as a tuple must hold positive ints (hidden widths); received {meta!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`meta_dropout` must lie in [0, 1); received {dropout!r}")
        for i, width in enumerate(meta):
            x = keras.layers.Dense(width, activation=activation, name=f"meta_dense_{i}")(x)
            if dropout:
                x = keras.layers.Dropout(dropout, name=f"meta_dropout_{i}")(x)
        return x
    if callable(meta):
        return meta(x)
    raise TypeError(
        "`meta` must be None, a tuple of hidden widths, or a Keras layer/model/callable; "
        f"received {type(meta).__name__}"
    )
