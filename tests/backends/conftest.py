"""The backend matrix runs as a user of that backend would: on PyTorch, without TensorFlow.

Under KERAS_BACKEND=torch every `import tensorflow` in this session fails as it does
where TensorFlow is not installed, so a capability that still imports it at run time
fails here ("No module named 'tensorflow'"). Keras itself never needs it on PyTorch.
"""

import importlib.abc
import importlib.machinery
import sys

import keras


class _TensorFlowAbsent(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `tensorflow` (and its submodules) only to refuse loading it."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] != "tensorflow":
            return None
        return importlib.machinery.ModuleSpec(name, self)  # origin None: "not a file"

    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r} (TensorFlow is absent in this session)")

    def exec_module(self, module):  # never reached
        raise ModuleNotFoundError(module.__name__)


if keras.backend.backend() == "torch":
    assert "tensorflow" not in sys.modules, "TensorFlow was imported before the backend matrix"
    sys.meta_path.insert(0, _TensorFlowAbsent())
