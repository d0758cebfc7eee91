"""A real process that exports a tiny model, for the concurrency and kill tests of
tests/export/test_export_processes.py.

Usage: python export_worker.py GO_FILE MODE:BASE_DIR:WIDTH [MODE:BASE_DIR:WIDTH ...]

Prints "ready" once TensorFlow is imported, then waits for GO_FILE to appear (so that
several workers export at the same instant; "-" does not wait), then runs the steps in
order (one TensorFlow start serves several checks). MODE:
  next      one export with version=None; prints "path <dir>".
  loop      exports version 1 with overwrite=True forever, printing "done <i>".
  staged    version 1, overwrite=True; stops (prints "staged") after the new model is
            written and fsynced, just before it is swapped in; sleeps to be killed.
  swapped   as staged, but stops right after the swap (the old model is still in the
            staging directory, not yet deleted); prints "swapped".
  aside     the fallback without renameat2: stops after the old version was renamed
            aside and before the new one is renamed in; prints "aside".
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from kfuse import export  # noqa: E402
from kfuse.export import versions as store  # noqa: E402


def model(width):
    x = keras.Input((3,), name="x")
    return keras.Model(x, keras.layers.Dense(width, name="out")(x), name=f"w{width}")


def stop(word):
    print(word, flush=True)
    time.sleep(600)


def main():
    go = None if sys.argv[1] == "-" else sys.argv[1]
    steps = [step.rsplit(":", 2) for step in sys.argv[2:]]
    print("ready", flush=True)
    while go and not os.path.exists(go):
        time.sleep(0.002)
    for mode, base, width in steps:
        run(mode, base, int(width))


def run(mode, base, width):
    net = model(width)
    if mode == "next":
        print("path", export.export_saved_model(net, base), flush=True)
        return
    if mode == "loop":
        for i in range(1, 10_000):
            export.export_saved_model(model(width + i % 2), base, version=1, overwrite=True)
            print("done", i, flush=True)
    real_exchange, real_rename = store._exchange, os.rename
    if mode == "staged":
        store._exchange = lambda a, b: stop("staged")
    elif mode == "swapped":
        store._exchange = lambda a, b: real_exchange(a, b) and stop("swapped")
    elif mode == "aside":
        store._exchange = lambda a, b: False

        def rename(a, b):
            real_rename(a, b)
            if ".old-" in b:
                stop("aside")

        os.rename = rename
    export.export_saved_model(net, base, version=1, overwrite=True)


if __name__ == "__main__":
    main()
