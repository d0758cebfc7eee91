"""Strategy resolution for `stack(..., strategy=)` (TensorFlow only)."""


def get_strategy(spec="auto"):
    """Resolve `spec` to a `tf.distribute.Strategy`.

    "auto": MirroredStrategy over all GPUs when there are several, else the default
    strategy; "mirrored"; "one_device"; "default"; or a Strategy passed through.
    """
    import tensorflow as tf

    if isinstance(spec, tf.distribute.Strategy):
        return spec
    if spec in (None, "default"):
        return tf.distribute.get_strategy()
    if spec == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if spec == "mirrored":
        return tf.distribute.MirroredStrategy()
    if spec == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    raise ValueError(
        f"Unknown strategy {spec!r}; valid: 'auto', 'default', 'mirrored', 'one_device', "
        "or a tf.distribute.Strategy"
    )
