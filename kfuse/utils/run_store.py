"""`RunStore`: the one checkpoint store of every kfuse `work_dir` (Stacker folds, ensemble members).

A `work_dir` holds `run.json`, the configuration fingerprint of the run that wrote it,
and entries: `<name>.keras` (a model) and `<name>.npz` (its arrays), the `.npz` written
last so an entry is done when both exist. Guarantees:

- one writer at a time: `RunStore` holds an exclusive lock on `work_dir/.kfuse.lock`
  (`fcntl.flock`, released by the kernel when the process dies, so a killed writer's
  lock is taken over; where `flock` is unavailable, an exclusive create of a file
  holding the pid, taken over when that pid is no longer alive). A second writer gets `WorkDirInUseError`
  naming the holder;
- the fingerprint check and `run.json`'s write happen under that lock; a fingerprint
  that differs is refused, naming every differing setting with its two values;
- every file is written under a unique temporary name (`.kfuse-tmp-<pid>-<uuid>`) and
  moved into place with `os.replace`; temporary files of a killed writer are removed by
  the next claim;
- a file that cannot be read raises `DamagedCheckpointError` with its path and remedy.

Example:

```python
import tempfile
from kfuse.utils.run_store import RunStore

with RunStore(tempfile.mkdtemp(), {"seed": 0}, who="demo") as store:
    store.save_arrays("state", epoch=3)
    int(store.load_arrays("state")["epoch"])  # 3
```
"""

import contextlib
import json
import os
import socket
import uuid
import zipfile

import keras
import numpy as np

FINGERPRINT = "run.json"
LOCK = ".kfuse.lock"
TEMP = ".kfuse-tmp-"
#: what reading a truncated or overwritten checkpoint raises
DAMAGE = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, json.JSONDecodeError)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class DamagedCheckpointError(ValueError):
    """A checkpoint file in a `work_dir` exists but cannot be read."""


class WorkDirInUseError(RuntimeError):
    """Another fit (process or thread) is writing into the same `work_dir`."""


def damaged(file, work_dir, error, what="retrains that part", who="Stacker"):
    return DamagedCheckpointError(
        f"{who}: the checkpoint file {file!r} is damaged and cannot be read "
        f"({type(error).__name__}: {str(error)[:160]}); it was probably cut short by a crash "
        f"or a full disk. Delete it and fit again (kfuse {what}), or delete the work_dir "
        f"{work_dir!r} to start over."
    )


def temp_name(file):
    """A temporary name beside `file`, unique to this process and call, same extension."""
    stem, ext = os.path.splitext(file)
    return f"{stem}{TEMP}{os.getpid()}-{uuid.uuid4().hex[:12]}{ext}"


def differences(old, new, path=""):
    """[(path, old value, new value)] of every leaf where two JSON values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else str(key)
            found += differences(old.get(key, "<absent>"), new.get(key, "<absent>"), where)
        return found
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new, strict=True)) for d in differences(a, b, f"{path}[{i}]")]
    return [] if old == new else [(path, old, new)]


def _short(value, limit=120):
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _alive(pid):
    """Whether process `pid` runs (unknown counts as alive: the lock is kept)."""
    if os.name == "nt":  # os.kill(pid, 0) would stop it there
        try:
            import psutil
        except ImportError:
            return True
        return psutil.pid_exists(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class RunStore:
    """The checkpoint store of one run under `path` (`None`: nothing on disk, no lock).

    `fingerprint` (a JSON dict) must equal the `run.json` of an earlier run there; `who`
    names the estimator in errors. Use as a context manager, or call `close()`, to
    release the work_dir for the next fit.
    """

    def __init__(self, path, fingerprint, who="Stacker"):
        self.path = None if path is None else os.fspath(path)
        self.fingerprint, self.who = fingerprint, who
        self._lock = None
        if self.path is not None:
            self._claim()

    # -- claim ----------------------------------------------------------------------------
    def _claim(self):
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise ValueError(
                f"{self.who}: work_dir {self.path!r} is a file, not a folder; kfuse keeps its "
                "checkpoints in a folder there. Pass a folder path (a new one or a previous run's)."
            )
        os.makedirs(self.path, exist_ok=True)
        self._lock = self._acquire()
        try:
            self._remove_temporaries()
            self._check_fingerprint()
        except BaseException:
            self.close()
            raise

    def _acquire(self):
        file = self._file(LOCK)
        holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
        if fcntl is not None:
            handle = open(file, "a+")  # noqa: SIM115 - held open until close()
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                owner = handle.read().strip()
                handle.close()
                raise self._busy(file, owner) from None
            except OSError:  # a file system without flock (some network mounts)
                handle.close()
                return self._acquire_by_create(self._file(LOCK + ".pid"), holder)
            handle.seek(0)
            handle.truncate()
            handle.write(holder)
            handle.flush()
            return handle
        return self._acquire_by_create(file, holder)

    def _acquire_by_create(self, file, holder):
        """An exclusive create holding this process's pid; a lock whose pid is no longer
        alive (a killed writer) is taken over."""
        for _ in range(2):
            try:
                fd = os.open(file, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    with open(file) as f:
                        owner = f.read().strip()
                except FileNotFoundError:  # released meanwhile: try again
                    continue
                try:
                    found = json.loads(owner)
                    pid, host = int(found["pid"]), found.get("host")
                except (ValueError, KeyError, TypeError):
                    pid = host = None  # being written, or garbled: kept (the message says how to clear it)
                if pid is None or host != socket.gethostname() or _alive(pid):
                    raise self._busy(file, owner) from None
                os.remove(file)  # a killed writer's lock: taken over
                continue
            os.write(fd, holder.encode())
            os.close(fd)
            return file
        raise self._busy(file, "unknown")

    def _busy(self, file, owner):
        return WorkDirInUseError(
            f"{self.who}: work_dir {self.path!r} is in use by another fit (lock {file!r}, held by "
            f"{owner or 'a process starting up'}); two fits must not write one work_dir. Wait for it to "
            f"finish, or give this fit another work_dir (if no fit is running, delete {file!r})."
        )

    def _remove_temporaries(self):
        for folder, _, files in os.walk(self.path):
            for name in files:
                if TEMP in name:  # left by a killed writer: the lock says none is running
                    os.remove(os.path.join(folder, name))

    def _check_fingerprint(self):
        file = self._file(FINGERPRINT)
        if not os.path.exists(file):
            self.write_json(FINGERPRINT, self.fingerprint)
            return
        try:
            with open(file) as f:
                old = json.load(f)
            if not isinstance(old, dict):
                raise ValueError(f"expected a JSON object, found {type(old).__name__}")
        except DAMAGE as error:
            raise damaged(file, self.path, error, "rewrites it and checks every part", self.who) from None
        found = differences(old, self.fingerprint)
        if found:
            keys = sorted({path.split(".")[0].split("[")[0] for path, _, _ in found})
            detail = "; ".join(f"{p}: work_dir has {_short(a)}, this fit {_short(b)}" for p, a, b in found[:6])
            raise ValueError(
                f"{self.who}: work_dir {self.path!r} holds a run of a different configuration "
                f"(differs in: {', '.join(keys)}) -- {detail}; kfuse will not mix the two runs. "
                f"Use another work_dir, or delete {self.path!r} to start over."
            )

    def close(self):
        """Release the work_dir (the lock) for the next fit; safe to call twice."""
        lock, self._lock = self._lock, None
        if lock is None:
            return
        if isinstance(lock, str):  # the exclusive-create lock
            with contextlib.suppress(FileNotFoundError):
                os.remove(lock)
        else:
            lock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- files ----------------------------------------------------------------------------
    @property
    def enabled(self):
        return self.path is not None

    def _file(self, *parts):
        return os.path.join(self.path, *parts)

    def _write(self, file, write):
        """`write(temporary name)`, then the file moved into place; no temporary is left."""
        os.makedirs(os.path.dirname(file), exist_ok=True)
        tmp = temp_name(file)
        try:
            write(tmp)
            os.replace(tmp, file)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def write_json(self, name, value):
        def write(tmp):
            with open(tmp, "w") as f:
                json.dump(value, f, indent=1, sort_keys=True)

        self._write(self._file(name), write)

    def save_arrays(self, name, **arrays):
        """Write `name.npz` atomically (nothing when disabled)."""
        if not self.enabled:
            return

        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})

        self._write(self._file(name + ".npz"), write)

    def load_arrays(self, name, what="retrains that part"):
        """`name.npz` as a dict, None when absent; a damaged file raises with its remedy."""
        file = self._file(name + ".npz") if self.enabled else None
        if file is None or not os.path.exists(file):
            return None
        try:
            with np.load(file) as d:
                return {k: d[k] for k in d.files}
        except DAMAGE as error:
            raise damaged(file, self.path, error, what, self.who) from None

    def has_model(self, name):
        return self.enabled and os.path.exists(self._file(name + ".keras"))

    def save_model(self, name, model):
        if self.enabled:
            self._write(self._file(name + ".keras"), model.save)

    def load_model(self, name, what="retrains that model", compile=False):
        file = self._file(name + ".keras")
        if not os.path.isfile(file):
            raise DamagedCheckpointError(
                f"{self.who}: the checkpoint {file!r} is missing though its part is marked done; "
                f"delete the .npz next to it and fit again, or delete {self.path!r} to start over."
            )
        try:
            return keras.saving.load_model(file, compile=compile)
        except DAMAGE as error:
            raise damaged(file, self.path, error, what, self.who) from None

    # -- entries: a model and its arrays ------------------------------------------------
    def has(self, name):
        """Whether entry `name` is done (both files; a deleted one is trained again)."""
        return self.enabled and all(os.path.exists(self._file(f"{name}.{e}")) for e in ("npz", "keras"))

    def save(self, name, model, **arrays):
        """The model first, then its arrays: the `.npz` marks the entry done."""
        self.save_model(name, model)
        self.save_arrays(name, **arrays)

    def load(self, name, need_model=True, what="retrains that part", compile=False):
        """(model or None, arrays) of a done entry; damaged files raise with path and remedy."""
        arrays = self.load_arrays(name, what)
        if arrays is None:
            raise DamagedCheckpointError(
                f"{self.who}: the checkpoint {self._file(name + '.npz')!r} vanished during the fit; "
                f"fit again, or delete {self.path!r} to start over."
            )
        if need_model:
            return self.load_model(name, what, compile), arrays
        file = self._file(name + ".keras")
        if not zipfile.is_zipfile(file):  # not loaded now, but a later run would load it
            raise damaged(file, self.path, ValueError("not a complete zip archive"), what, self.who)
        return None, arrays
