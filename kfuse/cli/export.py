"""`kfuse export`: a `.keras` model as a SavedModel for TF Serving from the command line.

    kfuse export saved_models/mnist1d_stack.keras saved_models/mnist1d_stack
    kfuse export model.keras saved_models/NAME --version 3 --overwrite --branch-outputs

Loads a `.keras` file and writes `saved_models/NAME/<version>/` (the next integer unless
`--version` is given) atomically; `kfuse inspect` reads what is there.
"""

import os
import zipfile


def add_arguments(parser):
    parser.add_argument("model", help="the model to export (.keras file)")
    parser.add_argument("base_dir", help="the export's base directory, e.g. saved_models/NAME")
    parser.add_argument("--version", type=int, help="version number (default: one more than the highest)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version")
    parser.add_argument("--branch-outputs", action="store_true",
                        help="add a 'branch_outputs' signature with every branch's output")


def load_model_file(path, compile=True):
    """Load a `.keras` file; a missing, non-.keras or damaged file is a ValueError naming it."""
    if not os.path.isfile(path):
        raise ValueError(f"{path!r}: no such model file (expected a .keras file)")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path!r} is damaged or not a .keras file (a .keras file is a zip archive; this one "
            "is cut short or of another format). Save the model again with model.save(path)."
        )
    import keras

    import kfuse  # noqa: F401  (registers kfuse layers and FusedModel for loading)

    try:
        return keras.saving.load_model(path, compile=compile)
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as error:
        text = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise ValueError(
            f"{path!r} could not be loaded: it is damaged or was written by an incompatible "
            f"version ({type(error).__name__}: {text}). Save the model again with model.save(path)."
        ) from error


def run(args):
    from kfuse import export
    from kfuse.cli.inspect import format_signatures

    model = load_model_file(args.model)
    path = export.export_saved_model(model, args.base_dir, version=args.version,
                                     overwrite=args.overwrite, branch_outputs=args.branch_outputs)
    print(f"exported {args.model} -> {path}")
    print("\n".join(format_signatures({os.path.basename(path): export.signatures(path)})))
    return 0
