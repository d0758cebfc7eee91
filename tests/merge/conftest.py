import keras
import pytest


@pytest.fixture(autouse=True)
def _seed():
    # The suite's fixture also clears the Keras session after each test (about a second on
    # this machine); these tests build a few tiny models each and need only the seed.
    keras.utils.set_random_seed(0)
    yield
