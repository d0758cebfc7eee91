"""Version directories of an export on disk: reserve, publish, clean up (used by `kfuse.export`).

TF Serving loads `base/<N>/` for the highest integer `N`, so every write here keeps
two promises:

* **Concurrent exports get distinct versions.** A version is reserved under an
  exclusive `fcntl.flock` on the `base` directory itself by creating its staging directory
  `base/.<N>.partial-<pid>-<random>` (a name TF Serving never loads); the next version is
  one more than every integer directory and every live reservation. The lock is held
  only to reserve and to publish (never while TensorFlow writes), and the kernel drops it
  when a process dies, so a killed export never blocks another.
* **`base/<N>` always holds a complete model.** The new model is written and fsynced in
  the staging directory, then renamed into place (fsync of `base` after). Replacing an
  existing version swaps the two directories in one `renameat2(RENAME_EXCHANGE)` call
  (Linux >= 3.15), so `base/<N>` is the old model until the instant it is the new one.
  Where that call is missing, the old version is first renamed to `.<N>.old-*` and the
  next access to `base` renames it back if the process died in between.

Staging directories whose process is gone (a killed export) are deleted on the next
export to the same base.
"""

import contextlib
import ctypes
import errno
import os
import re
import shutil
import socket
import tempfile
import time

_STAGING = re.compile(r"^\.(\d+)\.(partial|old)-(.+?)-(\d+)-[^-]+$")
_LEGACY = re.compile(r"^\.\d+\.(partial|old)-")  # kfuse < 0.2: no owner in the name
LEGACY_AGE_S = 3600
_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class VersionExistsError(FileExistsError, ValueError):
    """The version directory exists and `overwrite=True` was not given."""


def integer_dirs(base_dir):
    """Integer version directories under `base_dir` (complete or not), ascending."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(
        int(d) for d in os.listdir(base_dir) if d.isdigit() and os.path.isdir(os.path.join(base_dir, d))
    )


def is_complete(version_dir):
    return os.path.isfile(os.path.join(version_dir, "saved_model.pb"))


@contextlib.contextmanager
def locked(base_dir):
    """Hold the base directory's export lock (released by the kernel if the process dies)."""
    import fcntl

    os.makedirs(base_dir, exist_ok=True)
    fd = os.open(base_dir, os.O_RDONLY)  # flock on the directory itself: no lock file left
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the flock


def _alive(host, pid):
    if host != _HOST:
        return True  # another machine's export: never ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _staging_entries(base_dir):
    for name in os.listdir(base_dir):
        match = _STAGING.match(name)
        if not match and _LEGACY.match(name):
            age = time.time() - os.path.getmtime(os.path.join(base_dir, name))
            yield name, -1, "legacy", age < LEGACY_AGE_S
        elif match:
            version, kind, host, pid = match.groups()
            yield name, int(version), kind, _alive(host, int(pid))


def recover_and_clean(base_dir):
    """Under the lock: put back a version a dead process moved aside, delete dead staging.

    Returns the versions reserved by live exports."""
    live = set()
    for name, version, kind, alive in list(_staging_entries(base_dir)):
        path = os.path.join(base_dir, name)
        if alive:
            live.add(version)
            continue
        final = os.path.join(base_dir, str(version))
        old_model = os.path.join(path, "model")
        if kind == "old" and not os.path.exists(final) and is_complete(old_model):
            os.rename(old_model, final)  # the replacement died between its two renames
        shutil.rmtree(path, ignore_errors=True)
    return live


def reserve(base_dir, version, overwrite):
    """Reserve `version` (None: the next free one); return (version, staging directory)."""
    with locked(base_dir):
        live = recover_and_clean(base_dir)
        if version is None:
            version = max([0, *integer_dirs(base_dir), *live]) + 1
        final = os.path.join(base_dir, str(version))
        if not overwrite and (os.path.exists(final) or version in live):
            state = "exists" if os.path.exists(final) else "is being written by another export"
            raise VersionExistsError(f"{final} {state}; pass overwrite=True or another version")
        staging = tempfile.mkdtemp(prefix=f".{version}.partial-{_HOST}-{os.getpid()}-", dir=base_dir)
    return version, staging


def fsync_tree(path):
    """fsync every file and directory under `path` (so a rename publishes durable data)."""
    for root, _dirs, files in os.walk(path, topdown=False):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(root)


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exchange(a, b):
    """Atomically swap two paths; False where the kernel or libc lacks renameat2."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), b)


def publish(target, final, base_dir, version, overwrite):
    """Move the finished, fsynced SavedModel `target` to `final` (`base/<version>`)."""
    fsync_tree(target)
    with locked(base_dir):
        if os.path.exists(final):
            if not overwrite:
                raise VersionExistsError(f"{final} exists; pass overwrite=True or another version")
            if _exchange(target, final):  # target now holds the old model; deleted below
                fsync_dir(base_dir)
                return
            retired = tempfile.mkdtemp(prefix=f".{version}.old-{_HOST}-{os.getpid()}-", dir=base_dir)
            os.rename(final, os.path.join(retired, "model"))
        os.rename(target, final)
        fsync_dir(base_dir)
        for name, v, kind, _ in list(_staging_entries(base_dir)):
            if v == version and kind == "old" and f"-{os.getpid()}-" in name:
                shutil.rmtree(os.path.join(base_dir, name), ignore_errors=True)
