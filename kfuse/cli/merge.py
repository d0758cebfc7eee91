"""`kfuse merge CONFIG.yaml [-o OUT.keras]`: merge the weights of several Keras models of one
architecture from a mergekit-style YAML file (see `kfuse.merge.config`) into one `.keras` file.

    kfuse merge examples/merge_soup.yaml
    kfuse merge examples/merge_soup.yaml -o saved_models/soup.keras

Data-aware methods (fisher, regmean, adamerging, zipit) read input rows named in the file:
`data: rows.npy` for all models, or `data:` under each model entry (.npy or .npz).
"""


def add_arguments(parser):
    parser.add_argument("config", help="mergekit-style YAML file (merge_method, base_model, models, parameters, data)")
    parser.add_argument("-o", "--output", help="output .keras path (overrides the file's 'output')")


def run(args):
    from kfuse.merge.config import run_config

    out = run_config(args.config, args.output)
    print(f"kfuse merge: wrote {out}")
    return 0
