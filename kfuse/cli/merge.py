"""`kfuse merge CONFIG.yaml [-o OUT.keras]`: merge the weights of several Keras models of one
architecture from a mergekit-style YAML file (see `kfuse.merge.config`) into one `.keras` file.

    kfuse merge examples/merge_soup.yaml
    kfuse merge examples/merge_soup.yaml -o saved_models/soup.keras --force

A progress bar counts the merged tensors (--quiet: none).

An existing output is replaced only with --force; an output that is one of the inputs never.
Data-aware methods (fisher, regmean, adamerging, zipit) read input rows named in the file:
`data: rows.npy` for all models, or `data:` under each model entry (.npy or .npz).
"""


def add_arguments(parser):
    parser.add_argument("config", help="mergekit-style YAML file (merge_method, base_model, models, parameters, data)")
    parser.add_argument("-o", "--output", help="output .keras path (overrides the file's 'output')")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing output file (never one of the inputs)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar; print only the output path")


def run(args):
    from kfuse.merge.config import run_config

    out = run_config(args.config, args.output, overwrite=args.force, verbose=0 if args.quiet else 1)
    print(f"kfuse merge: wrote {out}")
    return 0
