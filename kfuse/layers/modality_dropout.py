"""ModDrop (Neverova et al. 2016): drop whole branches during training, then fuse."""

import keras
from keras import ops

from kfuse.layers.base import FusionLayer
from kfuse.layers.masking import check_presence, presence_column


@keras.saving.register_keras_serializable(package="kfuse")
class ModalityDropout(FusionLayer):
    """Drops whole branches at random while training, then applies a fusion operator.

    During training every branch of every sample is dropped with probability `rate`
    (at least one present branch per sample is always kept): its tensor is zeroed and
    its presence set to 0 before `fusion` runs, so the model learns to predict from any
    subset of modalities. At inference nothing is dropped and the layer is exactly
    `fusion`. Use it in `kfuse.stack(..., fusion=ModalityDropout(0.3, "gated"))`.

    Args:
        rate (float): float in [0, 1), the drop probability per branch and sample.
        fusion (str | keras.layers.Layer): the fusion applied afterwards: a name (see
            `kfuse.layers.fusion_names()`) or a `FusionLayer` (default "concat"); a layer that is
            already built is copied.
        seed (int | None): int or None, seed of the drop pattern.

    Keyword Args:
        branch_names (list[str] | None): optional branch names (set by `kfuse.stack`; passed to
            `fusion`).

    Example:

    ```python
    import numpy as np
    import kfuse

    fuse = kfuse.layers.ModalityDropout(0.5, fusion=kfuse.layers.GatedFusion(units=8))
    out = fuse([np.ones((4, 5)), np.ones((4, 3))], training=True)  # (4, 8)
    ```
    """

    supports_presence = True

    def __init__(self, rate=0.25, fusion="concat", seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise ValueError(f"ModalityDropout: `rate` must lie in [0, 1); received {rate!r}")
        from kfuse.layers.registry import get_fusion

        if isinstance(fusion, dict):
            fusion = keras.saving.deserialize_keras_object(fusion)
        fusion = get_fusion(fusion)
        policy = keras.dtype_policies.serialize(self.dtype_policy)
        if fusion.built or fusion.dtype_policy.name != self.dtype_policy.name:
            # a fresh copy: built already (in a graph, or revived), or computing in another
            # dtype than this wrapper (the inner fusion follows the wrapper's dtype policy)
            fusion = type(fusion).from_config({**fusion.get_config(), "dtype": policy})
        self.rate = float(rate)
        self.fusion = fusion
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        shapes = self._check_shapes(input_shape)
        if self.branch_names and self.fusion.branch_names is None:
            self.fusion.branch_names = list(self.branch_names)
        self.fusion.build(shapes)
        self.built = True

    def call(self, inputs, presence=None, training=None):
        inputs = list(inputs)
        count = len(inputs)
        if presence is not None:
            check_presence(self, presence, count, inputs[0].shape[0])
            presence = ops.cast(presence, inputs[0].dtype)
        if training and self.rate > 0:
            presence = self.drop_pattern(inputs, presence)
            inputs = [x * presence_column(presence, i, x) for i, x in enumerate(inputs)]
        if presence is not None and self.fusion.supports_presence:
            return self.fusion(inputs, presence=presence)
        if presence is not None:
            inputs = [x * presence_column(presence, i, x) for i, x in enumerate(inputs)]
        return self.fusion(inputs)

    def drop_pattern(self, inputs, presence=None):
        """A random `(batch, M)` 0/1 mask keeping each present branch with prob. 1 - rate."""
        count = len(inputs)
        batch = ops.shape(inputs[0])[0]
        noise = keras.random.uniform((batch, count), seed=self.seed_generator, dtype=inputs[0].dtype)
        base = ops.ones_like(noise) if presence is None else presence
        keep = ops.cast(noise >= self.rate, noise.dtype) * base
        fallback = ops.one_hot(ops.argmax(noise * base + base, axis=-1), count, dtype=noise.dtype)
        anything = ops.max(keep, axis=-1, keepdims=True)
        return ops.where(anything > 0, keep, fallback * ops.max(base, axis=-1, keepdims=True))

    def compute_output_spec(self, inputs, *args, presence=None, **kwargs):
        if presence is not None:
            check_presence(self, presence, len(inputs), inputs[0].shape[0])
        return super().compute_output_spec(inputs, *args, presence=presence, **kwargs)

    def compute_output_shape(self, input_shape):
        return self.fusion.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        fusion = keras.saving.serialize_keras_object(self.fusion)
        fusion.pop("build_config", None)  # the wrapper builds its fusion itself
        config.update(
            {
                "rate": self.rate,
                "fusion": fusion,
                "seed": self.seed,
            }
        )
        return config
