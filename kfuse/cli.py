"""The `kfuse` command. Each sub-command lives in its own module, imported on use.

A command module defines `add_arguments(parser)` and `run(args) -> int`. To add a
command, add one line to COMMANDS.
"""

import argparse
import importlib
import sys

#: sub-command -> (module, one-line help)
COMMANDS = {
    "demo": ("kfuse.demo_cli", "MNIST-1D: train three bases, fuse them, compare, export"),
    "report": ("kfuse.report_cli", "compare a saved model with its members; write one HTML report"),
    "tune": ("kfuse.tune_cli", "KerasTuner search over fusion designs of saved bases; export the best"),
    "export": ("kfuse.export_cli", "export a .keras model as a SavedModel for TF Serving (saved_models/NAME/<version>)"),
    "inspect": ("kfuse.export_cli", "list an export's versions, signatures, input and output names and shapes"),
}


def build_parser():
    parser = argparse.ArgumentParser(prog="kfuse", description="Fuse Keras networks into one model.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(command)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
