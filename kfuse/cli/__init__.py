"""The `kfuse` command. Each sub-command lives in its own module, imported on use.

A command module (`kfuse/cli/<command>.py`) defines `add_arguments(parser)` and
`run(args) -> int`. To add a command, add one line to COMMANDS.

Every user error (a bad argument, a missing or damaged file, a bad config value) is
reported as ONE line on stderr, `kfuse <command>: <what is wrong and what to do>`, with
exit status 2 and no traceback; `kfuse --debug <command> ...` (or `<command> --debug`)
shows the traceback instead. `main(argv)` returns the exit status; argparse's own usage
errors raise `SystemExit(2)` as usual.

Example:

```python
from kfuse.cli import main
main(["inspect", "/no/such/export"])  # prints "kfuse inspect: '/no/such/export' does not exist ..."; returns 2
```
"""

import argparse
import importlib
import os
import sys
import traceback
import zipfile

#: sub-command -> (module, one-line help)
COMMANDS = {
    "demo": ("kfuse.cli.demo", "MNIST-1D: train three bases, fuse them, compare, export"),
    "report": ("kfuse.cli.report", "compare a saved model with its members; write one HTML report"),
    "tune": ("kfuse.cli.tune", "KerasTuner search over fusion designs of saved bases; export the best"),
    "export": ("kfuse.cli.export", "export a .keras model as a SavedModel for TF Serving (saved_models/NAME/<version>)"),
    "inspect": ("kfuse.cli.inspect", "list an export's versions, signatures, input and output names and shapes"),
    "merge": ("kfuse.cli.merge", "merge the weights of models of one architecture (mergekit-style YAML) into one .keras"),
}
#: exit status of a user error (argparse's own)
USAGE = 2


class CommandError(ValueError):
    """A user error a command reports as one line (exit status 2)."""


def _user_errors():
    errors = [ValueError, TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile]
    try:
        import yaml

        errors.append(yaml.YAMLError)
    except ImportError:  # pragma: no cover (pyyaml is a dependency)
        pass
    return tuple(errors)


def one_line(error):
    """The error's message on one line (no traceback, no blank lines)."""
    if isinstance(error, KeyError) and error.args:
        text = str(error.args[0])
    elif isinstance(error, OSError) and error.filename and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def build_parser():
    parser = argparse.ArgumentParser(prog="kfuse", description="Fuse Keras networks into one model.")
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the traceback of an error instead of one line")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text, parents=[debug])
        command.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(command)
    return parser


def main(argv=None):
    """Run `kfuse ARGS`; return the exit status (0 ok, 2 user error, 1 internal error)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines are noise here
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return USAGE
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except _user_errors() as error:
        if args.debug:
            raise
        print(f"kfuse {args.command}: {one_line(error)}", file=sys.stderr)
        return USAGE
    except Exception as error:  # not a user error: still one line, the traceback on --debug
        if args.debug:
            raise
        where = traceback.extract_tb(error.__traceback__)[-1]
        print(
            f"kfuse {args.command}: internal error {type(error).__name__}: {one_line(error)} "
            f"(at {where.filename}:{where.lineno}; run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
