"""Shared pieces of the ensemble tests."""

import keras


def resumable_net():
    """BatchNorm (moving statistics) and Dropout (seed state) are part of a run's state too."""
    inp = keras.Input((6,))
    h = keras.layers.Dense(16, activation="relu")(inp)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Dropout(0.3)(h)
    return keras.Model(inp, keras.layers.Dense(2)(h))


class Crash(keras.callbacks.Callback):
    """Counts the epochs begun over a whole run (all phases); raises when the count reaches `at`."""

    def __init__(self, at=None):
        super().__init__()
        self.at, self.begun = at, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.begun += 1
        if self.at is not None and self.begun == self.at:
            raise RuntimeError(f"crash at epoch {self.begun}")
