"""Reaching a Ray cluster for the functions that launch processes on it (`fit_on_ray`,
`search_on_ray`): Ray present, the cluster reachable, the function shippable.

Ray stays optional: nothing here imports it until a function is called. Each check runs
before any process starts and names what to do: the pip command when Ray (or Ray Train)
is missing, `ray start --head` and the address forms when a cluster does not answer, a
module-level function when the one given cannot be pickled.

Example:

```python
from kfuse.utils.ray_session import check_shippable

check_shippable(len, "build_fn")  # a module-level function ships: nothing raised
```
"""

import contextlib
import socket

INSTALL = 'pip install "ray[train]"'
#: the port each address form dials when none is written
_DEFAULT_PORTS = {"ray://": 10001, "": 6379}


def require_ray(feature, train=False):
    """Import and return `ray`, or raise ImportError naming `feature` and the pip command.

    `train=True` also needs Ray Train (`ray.train.tensorflow`), which `ray[train]` installs.
    """
    try:
        import ray

        if train:
            import ray.train.tensorflow  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"{feature} runs on Ray{' Train' if train else ''}, which is not installed here "
            f"({error}). Install it with: {INSTALL}"
        ) from None
    return ray


def check_shippable(function, name, instead=None):
    """Raise TypeError unless `function` pickles with cloudpickle (what Ray ships with).

    A lambda or closure ships with everything it captures; a captured live object that
    cannot be pickled (a tf.data.Dataset, a tf.distribute strategy, a lock, an open
    file) stops it. `instead` says what to pass; a default sentence is used otherwise.
    """
    from ray import cloudpickle

    if not callable(function):
        raise TypeError(
            f"{name} must be a function; received {type(function).__name__} {function!r}"
        )
    try:
        cloudpickle.dumps(function)
    except Exception as error:  # cloudpickle raises TypeError, PicklingError, TF errors...
        instead = instead or (
            "a module-level function (or functools.partial of one) that builds what it needs "
            "inside the worker from files or plain settings"
        )
        raise TypeError(
            f"{name}={getattr(function, '__qualname__', function)!r} cannot be shipped to Ray "
            f"workers: pickling it failed ({type(error).__name__}: {error}). It captures a live "
            f"object that cannot leave this process. Pass {instead}."
        ) from error


def _host_port(address):
    """(host, port) that `address` dials, or None for "auto"/"local"."""
    if address in ("auto", "local"):
        return None
    scheme = "ray://" if address.startswith("ray://") else ""
    rest = address[len(scheme) :]
    host, _, port = rest.rpartition(":")
    if not host:
        host, port = rest, str(_DEFAULT_PORTS[scheme])
    if not port.isdigit() or not host:
        raise ValueError(
            f"address={address!r} is not a Ray address; write 'ray://host:10001' (Ray Client), "
            "'host:6379' (a cluster node you run on), 'auto' or None (a local cluster)"
        )
    return host, int(port)


def check_reachable(address, timeout_s=5.0):
    """Raise ConnectionError when nothing answers at `address` (before Ray waits on it)."""
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout_s):
            pass
    except OSError as error:
        raise ConnectionError(
            f"No Ray cluster answers at address={address!r} ({target[0]}:{target[1]}: {error}). "
            "Start one on the head machine with `ray start --head` (it prints the address; Ray "
            "Client listens on port 10001: address='ray://<head>:10001'), or pass address=None "
            "for a local cluster on this machine."
        ) from None


@contextlib.contextmanager
def ray_session(address=None, feature="this function"):
    """Use the Ray connection this process has, else connect to `address` (None: start a
    local cluster); a connection opened here is closed on the way out. An `address` while
    connected elsewhere is refused (which cluster was meant is not clear)."""
    ray = require_ray(feature)
    if ray.is_initialized():
        if address not in (None, "auto"):
            raise ValueError(
                f"{feature}: address={address!r}, but this process is already connected to a Ray "
                f"cluster (GCS {ray.get_runtime_context().gcs_address}). Leave address=None to "
                "use that one, or call ray.shutdown() first."
            )
        yield ray
        return
    if address is not None:
        check_reachable(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except ConnectionError as error:
        raise ConnectionError(
            f"{feature}: could not connect to the Ray cluster at address={address!r} ({error}). "
            "Check that `ray status` on the head machine lists it, or pass address=None for a "
            "local cluster."
        ) from error
    try:
        yield ray
    finally:
        ray.shutdown()


def grow_gpu_memory():
    """Let TensorFlow take GPU memory as it needs it (call in a worker before any tensor):
    several workers, or a worker and Ray, can then share one GPU."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
