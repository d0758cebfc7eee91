"""Keep TensorFlow's start-up lines off the `kfuse` command's console.

Importing TensorFlow 2.21 prints C++ log lines on stderr (the oneDNN notice,
`cpu_feature_guard`, absl's "All log messages before absl::InitializeLog()"), and the
oneDNN one ignores `TF_CPP_MIN_LOG_LEVEL`. `kfuse/__init__.py` calls
`quiet_tensorflow_import()` before anything imports Keras: when the process is the
`kfuse` command (the console script or `python -m kfuse.cli`), TensorFlow is imported
once with the stderr file descriptor pointed at /dev/null and `TF_CPP_MIN_LOG_LEVEL=2`
(unless set), so `kfuse --help` prints only its help. A library user's process is left
alone. A failing TensorFlow import still raises its error, after stderr is restored.

Example:

```python
from kfuse.utils.console import is_kfuse_command
is_kfuse_command(["/usr/bin/kfuse", "--help"], ["python"])   # True
is_kfuse_command(["train.py"], ["python", "train.py"])        # False
```
"""

import contextlib
import importlib.util
import os
import sys


def is_kfuse_command(argv=None, orig_argv=None):
    """True when the process runs the `kfuse` console script or `python -m kfuse.cli`."""
    argv = sys.argv if argv is None else argv
    orig_argv = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    if argv and os.path.basename(argv[0]) in ("kfuse", "kfuse.exe"):
        return True
    return any(a == "-m" and b in ("kfuse.cli", "kfuse.cli.__main__")
               for a, b in zip(orig_argv, orig_argv[1:], strict=False))


@contextlib.contextmanager
def stderr_to_devnull():
    """Point file descriptor 2 (C++ logging writes there) at /dev/null for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_tensorflow_import():
    """Import TensorFlow silently if this process is the `kfuse` command; else do nothing."""
    if "tensorflow" in sys.modules or not is_kfuse_command():
        return
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    if importlib.util.find_spec("tensorflow") is None:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with stderr_to_devnull():
        try:
            import tensorflow  # noqa: F401
        except Exception:  # noqa: BLE001 (imported again below, with its error shown)
            pass
    if "tensorflow" not in sys.modules:
        import tensorflow  # noqa: F401  (the same import, now with its error on stderr)
