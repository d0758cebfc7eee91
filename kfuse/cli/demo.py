"""`kfuse demo`: the MNIST-1D main job (see `kfuse.demo`)."""


def add_arguments(parser):
    parser.add_argument("--quick", action="store_true", help="small data and few epochs (< 1 minute)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="saved_models", help="where models and the export go")
    parser.add_argument("--no-export", action="store_true", help="skip the SavedModel export")


def run(args):
    from kfuse.demo import run_demo

    run_demo(out_dir=args.out, quick=args.quick, seed=args.seed, export=not args.no_export)
    return 0
