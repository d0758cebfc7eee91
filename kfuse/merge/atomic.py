"""The merge's output file: never one of its inputs, never replaced without ``overwrite``,
written whole or not at all.

The merged archive is written to ``.kfuse-merge-<pid>-<random>.keras`` in the output's folder
and renamed into place (``os.replace``, atomic on one file system). On an error, Ctrl-C or
SIGTERM the temp files are removed; a merge killed outright (SIGKILL, power loss) leaves them
behind, and the next merge into that folder removes every temp file whose process is gone.
"""

import contextlib
import glob
import os
import re
import signal
import tempfile
import threading
import warnings

PREFIX = ".kfuse-merge-"
_OWNER = re.compile(re.escape(PREFIX) + r"(\d+)-")


def check_output(output, inputs, overwrite=False):
    """Refuse an ``output`` that is one of ``inputs`` (``(name, path)`` pairs: the same file,
    whatever the spelling or link) or that exists while ``overwrite`` is false.

    Example:

    ```python
    from kfuse.merge.atomic import check_output
    check_output("/tmp/new-merge.keras", [("models[0]", "/tmp/a.keras")])  # a new file: fine
    ```
    """
    output = os.fspath(output)
    real = os.path.realpath(output)
    for name, path in inputs:
        if path is None or not isinstance(path, (str, os.PathLike)):
            continue
        same = os.path.realpath(os.fspath(path)) == real
        if not same and os.path.exists(output) and os.path.exists(path):
            same = os.path.samefile(output, path)
        if same:
            raise ValueError(
                f"output {output!r} is {name} ({os.fspath(path)!r}): a merge never writes over "
                "one of its inputs; choose another output path"
            )
    if os.path.exists(output) and not overwrite:
        raise FileExistsError(
            f"output {output!r} already exists; pass overwrite=True (kfuse merge: --force) to "
            "replace it, or choose another output path"
        )


def _alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def clean_stale(folder):
    """Remove the merge temp files in ``folder`` whose process has ended (a killed merge);
    warn about temp files of an unknown owner. Returns the removed paths.

    Example:

    ```python
    import tempfile
    from kfuse.merge.atomic import clean_stale
    print(clean_stale(tempfile.mkdtemp()))  # []
    ```
    """
    removed, unknown = [], []
    for path in sorted(glob.glob(os.path.join(glob.escape(folder), PREFIX + "*"))):
        owner = _OWNER.match(os.path.basename(path))
        if owner is None:
            unknown.append(path)
        elif not _alive(int(owner.group(1))):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            removed.append(path)
    if unknown:
        warnings.warn(
            f"{len(unknown)} merge temp file(s) of an earlier kfuse in {folder!r} "
            f"(e.g. {os.path.basename(unknown[0])!r}): delete them if no merge is running there",
            stacklevel=3,
        )
    return removed


class Terminated(SystemExit):
    """SIGTERM during a merge, raised so that the temp files are removed on the way out."""


@contextlib.contextmanager
def _sigterm_raises():
    """In the main thread, SIGTERM raises `Terminated` (exit status 143) while inside."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


@contextlib.contextmanager
def atomic_output(output, suffix=".keras"):
    """Yield a temp path in ``output``'s folder, renamed to ``output`` when the block ends
    without error; otherwise the temp path and the files named after it are removed.

    Example:

    ```python
    import os, tempfile
    from kfuse.merge.atomic import atomic_output
    out = os.path.join(tempfile.mkdtemp(), "m.keras")
    with atomic_output(out) as tmp:
        open(tmp, "w").write("merged")
    print(open(out).read())  # merged
    ```
    """
    output = os.fspath(output)
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    clean_stale(folder)
    with _sigterm_raises():
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"{PREFIX}{os.getpid()}-", suffix=suffix)
            os.close(fd)
            yield tmp
            os.replace(tmp, output)
        except BaseException:
            for path in glob.glob(glob.escape(tmp) + "*") if tmp else []:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
            raise
