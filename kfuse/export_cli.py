"""`kfuse export` and `kfuse inspect`: SavedModels for TF Serving from the command line.

    kfuse export saved_models/mnist1d_stack.keras saved_models/mnist1d_stack
    kfuse export model.keras saved_models/NAME --version 3 --overwrite --branch-outputs
    kfuse inspect saved_models/mnist1d_stack          # versions, signatures, names, shapes
    kfuse inspect saved_models/mnist1d_stack --json

`export` loads a `.keras` file and writes `saved_models/NAME/<version>/` (the next
integer unless `--version` is given) atomically; `inspect` reads what is there.
"""

import json
import os
import sys


def add_arguments(parser):
    if parser.prog.split()[-1] == "inspect":
        parser.add_argument("path", help="an export's base directory (saved_models/NAME) or one version directory")
        parser.add_argument("--json", action="store_true", help="print the description as JSON")
        return
    parser.add_argument("model", help="the model to export (.keras file)")
    parser.add_argument("base_dir", help="the export's base directory, e.g. saved_models/NAME")
    parser.add_argument("--version", type=int, help="version number (default: one more than the highest)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version")
    parser.add_argument("--branch-outputs", action="store_true",
                        help="add a 'branch_outputs' signature with every branch's output")


def format_signatures(description):
    """Human-readable lines for `kfuse.export.inspect(...)`."""
    lines = []
    for version, signatures in description.items():
        lines.append(f"version {version}")
        for name, signature in signatures.items():
            lines.append(f"  signature '{name}'")
            for kind in ("inputs", "outputs"):
                for key, spec in signature[kind].items():
                    shape = "unknown" if spec["shape"] is None else "(" + ", ".join(
                        "None" if d is None else str(d) for d in spec["shape"]) + ")"
                    lines.append(f"    {kind[:-1]:<6} {key:<16} {spec['dtype']:<8} {shape}")
    return lines


def run(args):
    from kfuse import export

    try:
        if args.command == "inspect":
            description = export.inspect(args.path)
            print(json.dumps(description, indent=2) if args.json else "\n".join(format_signatures(description)))
            return 0
        if not os.path.isfile(args.model):
            raise ValueError(f"{args.model!r}: no such model file (expected a .keras file)")
        import keras

        import kfuse  # noqa: F401  (registers kfuse layers and FusedModel for loading)

        model = keras.saving.load_model(args.model)
        path = export.export_saved_model(model, args.base_dir, version=args.version,
                                         overwrite=args.overwrite, branch_outputs=args.branch_outputs)
    except (ValueError, TypeError) as error:
        print(f"kfuse {args.command}: {error}", file=sys.stderr)
        return 1
    print(f"exported {args.model} -> {path}")
    print("\n".join(format_signatures({os.path.basename(path): export.signatures(path)})))
    return 0
