"""`kfuse inspect`: an export's versions, signatures, input and output names and shapes.

    kfuse inspect saved_models/mnist1d_stack          # versions, signatures, names, shapes
    kfuse inspect saved_models/mnist1d_stack --json

A version directory without `saved_model.pb` is listed as INCOMPLETE (TF Serving would
try to load it).
"""

import json
import warnings


def add_arguments(parser):
    parser.add_argument("path", help="an export's base directory (saved_models/NAME) or one version directory")
    parser.add_argument("--json", action="store_true", help="print the description as JSON")


def format_signatures(description):
    """Human-readable lines for `kfuse.export.inspect(...)`.

    Example:

    ```python
    from kfuse.cli.inspect import format_signatures
    spec = {"dtype": "float32", "shape": [None, 4]}
    format_signatures({"1": {"serving_default": {"inputs": {"x": spec}, "outputs": {"y": spec}}}})
    ```
    """
    lines = []
    for version, signatures in description.items():
        if "incomplete" in signatures:
            lines.append(f"version {version}  INCOMPLETE: {signatures['incomplete']}")
            continue
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

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # incomplete versions are listed in the output
        description = export.inspect(args.path)
    print(json.dumps(description, indent=2) if args.json else "\n".join(format_signatures(description)))
    return 0
