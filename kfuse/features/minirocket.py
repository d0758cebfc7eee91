"""MiniRocket (Dempster, Schmidt & Webb, KDD 2021) as a Keras layer.

84 fixed convolution kernels of length 9 (weights -1, with 2 at three of the nine
positions), each at a set of dilations chosen from the series length; per kernel and
dilation, biases drawn from the quantiles of that convolution on one random training
series; the feature is the proportion of positive values (PPV) of the convolution minus
each bias. Half the kernel / dilation pairs see the zero-padded series, the other half
only its valid part. The layer follows aeon's `MiniRocket` (the reference code) in every
one of these choices and in the feature order, so, given aeon's biases, it returns aeon's
features: `tests/features/test_minirocket.py` checks that.

Nothing in it trains. Its state (the biases, and for several channels the channel
subset of each kernel / dilation pair) lives in non-trainable weights, so the layer
saves, reloads and clones with the model, and a `Stacker` re-adapts it per fold
(`kfuse.Branch(..., readapt=True)`), as it does a `Normalization`.
"""

import itertools

import keras
import numpy as np
from keras import ops

KERNEL_LENGTH = 9
# the positions that hold weight 2 in each of the 84 kernels, in aeon's order
KERNEL_INDICES = np.array(list(itertools.combinations(range(KERNEL_LENGTH), 3)), dtype="int32")
NUM_KERNELS = len(KERNEL_INDICES)


def kernel_weights():
    """The 84 kernels as a Conv1D kernel of shape (9, 1, 84)."""
    weights = np.full((KERNEL_LENGTH, NUM_KERNELS), -1.0, dtype="float32")
    for k, positions in enumerate(KERNEL_INDICES):
        weights[positions, k] = 2.0
    return weights[:, None, :]


def fit_dilations(length, num_features, max_dilations_per_kernel):
    """Dilations and the number of features (biases) at each, as aeon's `_fit_dilations`."""
    per_kernel = num_features // NUM_KERNELS
    true_max = min(per_kernel, max_dilations_per_kernel)
    multiplier = per_kernel / true_max
    max_exponent = np.log2((length - 1) / (KERNEL_LENGTH - 1))
    dilations, counts = np.unique(
        np.logspace(0, max_exponent, true_max, base=2).astype("int32"), return_counts=True
    )
    counts = (counts * multiplier).astype("int32")
    remainder = per_kernel - int(np.sum(counts))
    i = 0
    while remainder > 0:
        counts[i] += 1
        remainder -= 1
        i = (i + 1) % len(counts)
    return dilations.tolist(), counts.tolist()


def quantiles(n):
    """The low-discrepancy quantiles (k * golden ratio) mod 1, k = 1..n, as aeon draws them."""
    return np.array([(k * ((np.sqrt(5) + 1) / 2)) % 1 for k in range(1, n + 1)], dtype="float32")


def _traced(variable):
    """Whether `variable` reads as a symbolic value here (inside tf.function or jax.jit)."""
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return not tf.executing_eagerly()
    if backend == "jax":
        import jax

        return isinstance(variable.value, jax.core.Tracer)
    return False


@keras.saving.register_keras_serializable(package="kfuse")
class MiniRocket(keras.layers.Layer):
    """MiniRocket features of a (batch, steps, channels) series: (batch, ~num_features).

    Call `adapt(series)` on training series before use (the biases come from them).
    With C > 1 channels each kernel / dilation pair sums its convolution over a random
    subset of up to 9 channels (aeon's multivariate MiniRocket).

    Args:
        num_features (int): about how many features (rounded down to a multiple of 84).
        max_dilations_per_kernel (int): at most this many dilations per kernel.
        seed (int | None): draws the training series of each bias and the channel subsets; None
            draws from NumPy's global state (set by `keras.utils.set_random_seed`).

    Example:

    ```python
    import numpy as np
    from kfuse.features import MiniRocket

    series = np.random.default_rng(0).normal(size=(20, 50, 1)).astype("float32")
    rocket = MiniRocket(num_features=840, seed=0)
    rocket.adapt(series)
    features = np.asarray(rocket(series))
    assert features.shape == (20, 840) and 0 <= features.min() and features.max() <= 1
    ```
    """

    def __init__(self, num_features=10_000, max_dilations_per_kernel=32, seed=None, **kwargs):
        super().__init__(**kwargs)
        if int(num_features) != num_features or num_features < NUM_KERNELS:
            raise ValueError(
                f"MiniRocket: `num_features` must be an integer >= {NUM_KERNELS} (one "
                f"feature per kernel); received {num_features!r}"
            )
        if int(max_dilations_per_kernel) != max_dilations_per_kernel or max_dilations_per_kernel < 1:
            raise ValueError(
                "MiniRocket: `max_dilations_per_kernel` must be a positive integer; "
                f"received {max_dilations_per_kernel!r}"
            )
        self.num_features = int(num_features)
        self.max_dilations_per_kernel = int(max_dilations_per_kernel)
        self.seed = seed
        self.trainable = False

    def _rng(self):
        seed = self.seed if self.seed is not None else np.random.randint(2**31 - 1)
        return np.random.default_rng(seed)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                f"MiniRocket '{self.name}' takes series of shape (batch, steps, channels) "
                f"with known steps and channels; received {tuple(input_shape)}"
            )
        length, channels = int(input_shape[1]), int(input_shape[2])
        if length < KERNEL_LENGTH:
            raise ValueError(
                f"MiniRocket '{self.name}': series of {length} steps are shorter than its "
                f"kernels ({KERNEL_LENGTH}); zero-pad them to at least {KERNEL_LENGTH} steps"
            )
        self.dilations, self.features_per_dilation = fit_dilations(
            length, self.num_features, self.max_dilations_per_kernel
        )
        self.length, self.channels = length, channels
        self.output_width = NUM_KERNELS * int(sum(self.features_per_dilation))
        self.biases = self.add_weight(
            name="biases", shape=(self.output_width,), initializer="zeros", trainable=False
        )
        self.channel_mask = self.add_weight(
            name="channel_mask", shape=(len(self.dilations) * NUM_KERNELS, channels),
            initializer="ones", trainable=False,
        )
        self.adapted = self.add_weight(
            name="adapted", shape=(), initializer="zeros", trainable=False
        )
        if channels > 1:
            self.channel_mask.assign(self._draw_channels(channels))

    def _draw_channels(self, channels):
        """aeon's channel subsets: 2^U(0, log2(min(C, 9) + 1)) channels per pair."""
        rng = self._rng()
        pairs = len(self.dilations) * NUM_KERNELS
        counts = (2 ** rng.uniform(0, np.log2(min(channels, 9) + 1), pairs)).astype("int32")
        mask = np.zeros((pairs, channels), dtype="float32")
        for pair, count in enumerate(counts):
            mask[pair, rng.choice(channels, count, replace=False)] = 1.0
        return mask

    def _convolutions(self, x, j):
        """(batch, steps, 84) convolutions at dilation j, summed over each pair's channels."""
        batch = ops.shape(x)[0]
        per_channel = ops.reshape(ops.transpose(x, (0, 2, 1)), (-1, self.length, 1))
        conv = ops.conv(per_channel, kernel_weights(), padding="same", dilation_rate=self.dilations[j])
        if self.channels == 1:  # one channel: every subset is that channel
            return conv
        conv = ops.reshape(conv, (batch, self.channels, self.length, NUM_KERNELS))
        mask = ops.transpose(self.channel_mask[j * NUM_KERNELS:(j + 1) * NUM_KERNELS])  # (C, 84)
        return ops.sum(conv * ops.cast(mask, conv.dtype)[None, :, None, :], axis=1)

    def call(self, x):
        self._check_adapted()
        x = ops.cast(x, "float32")
        features, start = [], 0
        for j, count in enumerate(self.features_per_dilation):
            conv = self._convolutions(x, j)
            biases = ops.reshape(self.biases[start:start + NUM_KERNELS * count], (NUM_KERNELS, count))
            ppv = _ppv(conv, biases, j, self.dilations[j])
            features.append(ops.reshape(ppv, (-1, NUM_KERNELS * count)))
            start += NUM_KERNELS * count
        # not adapted (a traced call, where the check above cannot run): NaN, never a
        # plausible-looking output computed with zero biases
        guard = ops.where(self.adapted > 0, 1.0, float("nan"))
        return ops.concatenate(features, axis=-1) * guard

    def _check_adapted(self):
        # eager calls only: a traced call (fit, predict) cannot read the flag, and relies
        # on the NaN guard in call()
        if _traced(self.adapted):
            return
        if not float(ops.convert_to_numpy(self.adapted)):
            raise ValueError(
                f"MiniRocket '{self.name}' is not adapted: call `.adapt(training_series)` "
                "first (its biases come from the training series)"
            )

    def adapt(self, data, batch_size=None):
        """Draw the biases from `data` (array or tf.data of series, (n, steps, channels))."""
        series = _as_array(data, self.name)
        if not self.built:
            self.build(series.shape)
        if series.shape[1:] != (self.length, self.channels):
            raise ValueError(
                f"MiniRocket '{self.name}' was built for series of shape "
                f"{(self.length, self.channels)}; adapt() received {series.shape[1:]}"
            )
        if not np.all(np.isfinite(series)):
            row = int(np.argwhere(~np.isfinite(series).reshape(len(series), -1).all(1))[0, 0])
            raise ValueError(
                f"MiniRocket '{self.name}': adapt() received a non-finite value in series "
                f"{row}; fill or drop missing values first"
            )
        rng = self._rng()
        q = quantiles(self.output_width)
        biases, start = np.zeros(self.output_width, dtype="float32"), 0
        for j, count in enumerate(self.features_per_dilation):
            chosen = series[rng.integers(len(series), size=NUM_KERNELS)]
            conv = np.asarray(ops.convert_to_numpy(self._convolutions(ops.convert_to_tensor(chosen), j)))
            for k in range(NUM_KERNELS):  # kernel k's bias series is the k-th drawn series
                end = start + count
                biases[start:end] = np.quantile(conv[k, :, k], q[start:end])
                start = end
        self.biases.assign(biases)
        self.adapted.assign(1.0)

    def compute_output_shape(self, input_shape):
        if not self.built:
            self.build(input_shape)
        return (input_shape[0], self.output_width)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_features=self.num_features,
            max_dilations_per_kernel=self.max_dilations_per_kernel,
            seed=self.seed,
        )
        return config


def _ppv(conv, biases, j, dilation):
    """(batch, 84, count) PPVs: each kernel's steps above each bias, over its window."""
    length = conv.shape[1]
    padding = (KERNEL_LENGTH - 1) * dilation // 2
    positive = ops.cast(conv[..., None] > biases, "float32")  # (batch, steps, 84, count)
    padded = ops.mean(positive, axis=1)
    valid = ops.mean(positive[:, padding:length - padding], axis=1)
    uses_padding = ((j + np.arange(NUM_KERNELS)) % 2 == 0)[None, :, None]
    return ops.where(uses_padding, padded, valid)


def _as_array(data, name):
    if hasattr(data, "as_numpy_iterator"):  # a tf.data.Dataset of batches
        parts = [b[0] if isinstance(b, tuple) else b for b in data.as_numpy_iterator()]
        data = np.concatenate(parts)
    series = np.asarray(data, dtype="float32")
    if series.ndim == 2:
        raise ValueError(
            f"MiniRocket '{name}': adapt() received 2-D data {series.shape}; give series "
            f"as (n, steps, channels), e.g. x[..., None] for one channel"
        )
    if series.ndim != 3 or len(series) == 0:
        raise ValueError(
            f"MiniRocket '{name}': adapt() takes (n, steps, channels) series, n >= 1; "
            f"received shape {series.shape}"
        )
    return series
