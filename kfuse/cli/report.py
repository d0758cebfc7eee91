"""`kfuse report`: compare a saved model (and its members) on a data set, write HTML.

    kfuse report saved_models/mnist1d_stack.keras --data mnist1d \\
        --members saved_models/mnist1d_cnn.keras saved_models/mnist1d_gru.keras \\
        --out report.html

`--data` is `mnist1d` (its 1,000 test rows) or an `.npz` file holding the labels as
`y_test` (or `y`) and the inputs as `x_test` (or `x`) for one-input models, or as one
array per input named after the model's inputs (e.g. `signal`, `image`) otherwise.
"""

import os


def add_arguments(parser):
    import argparse

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n\n", 1)[1]
    parser.add_argument("model", help="the model to report on (.keras file); the reference")
    parser.add_argument("--data", required=True, help="'mnist1d' or an .npz file (see below)")
    parser.add_argument("--members", nargs="*", default=[], help="other .keras models to compare against")
    parser.add_argument("--out", default="report.html", help="HTML file to write (default report.html)")
    parser.add_argument("--task", default="auto", choices=("auto", "classification", "regression"))
    parser.add_argument("--markdown", help="also write the report as Markdown to this file")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def load_data(spec, input_names=None):
    """(x, y) from 'mnist1d' or an .npz file; see the module docstring."""
    if spec == "mnist1d":
        from kfuse.datasets.mnist1d import load_mnist1d

        _, (x, y) = load_mnist1d()
        return x, y
    if not os.path.isfile(spec):
        raise ValueError(f"--data {spec!r}: no such file (expected 'mnist1d' or an .npz file)")
    from kfuse.datasets.dataset import read_npz

    arrays = read_npz(spec, f"--data {spec!r}", "x_test=..., y_test=...")
    y_key = next((k for k in ("y_test", "y") if k in arrays), None)
    if y_key is None:
        raise ValueError(f"--data {spec}: no labels; expected an array named 'y_test' or 'y' (found {sorted(arrays)})")
    names = input_names or []
    if names and all(n in arrays for n in names) and not (len(names) == 1 and "x_test" in arrays):
        return {n: arrays[n] for n in names}, arrays[y_key]
    x_key = next((k for k in ("x_test", "x") if k in arrays), None)
    if x_key is None:
        raise ValueError(
            f"--data {spec}: no inputs; expected 'x_test' / 'x', or arrays named after the "
            f"model's inputs {names} (found {sorted(arrays)})"
        )
    return arrays[x_key], arrays[y_key]


def _name(path, taken):
    name = os.path.splitext(os.path.basename(path))[0]
    base, i = name, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


def run(args):
    from kfuse.cli.export import load_model_file
    from kfuse.evaluation import compare  # also registers kfuse's layers for loading

    models = {}
    for path in [*args.members, args.model]:
        models[_name(path, models)] = load_model_file(path, compile=False)
    reference = list(models)[-1]
    ref_model = models[reference]
    names = getattr(ref_model, "input_names", None) or [t.name for t in ref_model.inputs]
    x, y = load_data(args.data, list(names))
    report = compare(models, x, y, task=args.task, reference=reference, seed=args.seed)
    path = report.to_html(args.out, title=f"kfuse report: {reference} on {os.path.basename(args.data)}")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(report.to_markdown())
    print(report.to_markdown().split("## Diversity")[0].rstrip())
    print(f"\nwrote {path}" + (f" and {args.markdown}" if args.markdown else ""))
    return 0
