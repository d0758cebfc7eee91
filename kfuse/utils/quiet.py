"""Keep TensorFlow's retracing warnings out of runs that build many small models.

`compare()` predicts with many models once each and a `Stacker` trains a new model per
fold: each builds its own `tf.function`, which TensorFlow reports as "triggered
tf.function retracing" although nothing is wrong. Inside `quiet_tensorflow()` the
`tensorflow` logger shows errors only; its level is restored afterwards.
"""

import contextlib
import logging


@contextlib.contextmanager
def quiet_tensorflow():
    """Silence the `tensorflow` logger below ERROR for the duration of the block.

    Example:

    ```python
    from kfuse.utils.quiet import quiet_tensorflow
    with quiet_tensorflow():
        pass  # train or predict many small models here
    ```
    """
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
