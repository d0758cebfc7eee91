"""Fusion operators: parameters, FLOPs per sample and measured predict time.

M = 2, 4, 8 branches of width 128 (CrossAttentionFusion: sequences of 8 steps x 128).
Parameters and FLOPs come from `kfuse.layers.cost` (nothing built); the built layer's
parameter count is checked against it. Predict time: a graph of M inputs -> operator,
`predict` on ROWS random rows, batch 512, warmed up, median of REPEATS. TensorFusion
above its size guard is reported as refused (its cost is still computed).
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kfuse import layers  # noqa: E402

ROWS = int(os.environ.get("KFUSE_BENCH_ROWS", 8192))
WIDTH = 128
STEPS = 8
BATCH = 512
REPEATS = 3

OPERATORS = {
    "concat": lambda: layers.Concat(),
    "average": lambda: layers.Average(),
    "weighted_average": lambda: layers.WeightedAverage(),
    "gated": lambda: layers.GatedFusion(units=64),
    "attention": lambda: layers.AttentionFusion(units=64),
    "low_rank (r=4)": lambda: layers.LowRankFusion(units=64, rank=4),
    "tensor (+Dense 64)": lambda: layers.TensorFusion(units=64),
    "bilinear (k=4)": lambda: layers.BilinearFusion(units=64, factor=4),
    "film": lambda: layers.FiLM(conditioning=0),
    "trimmed_mean": lambda: layers.TrimmedMean(trim=1),
    "median": lambda: layers.Median(),
    "outlier_gated": lambda: layers.OutlierGatedAverage(),
    "cross_attention (8 steps)": lambda: layers.CrossAttentionFusion(units=64, num_heads=4),
}


def measure(name, factory, count):
    layer = factory()
    sequence = name.startswith("cross_attention")
    shape = (STEPS, WIDTH) if sequence else (WIDTH,)
    widths = [shape if sequence else WIDTH] * count
    if name == "trimmed_mean" and count <= 2:
        return None
    predicted = layers.cost(layer, widths)
    row = {"params": predicted["params"], "flops": predicted["flops"], "ms": None, "note": ""}
    inputs = [keras.Input(shape) for _ in range(count)]
    try:
        model = keras.Model(inputs, layer(inputs))
    except ValueError as error:
        row["note"] = "refused: " + str(error).split(";")[0].split("builds a ")[-1]
        return row
    assert model.count_params() == predicted["params"], (name, count, model.count_params())
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(ROWS, *shape)).astype("float32") for _ in range(count)]
    model.predict(x, batch_size=BATCH, verbose=0)
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        model.predict(x, batch_size=BATCH, verbose=0)
        times.append(time.perf_counter() - start)
    row["ms"] = 1000 * statistics.median(times) * 1000 / ROWS
    return row


def main():
    keras.utils.set_random_seed(0)
    print(f"backend={keras.backend.backend()} width={WIDTH} rows={ROWS} batch={BATCH} "
          f"repeats={REPEATS}; time = median ms per 1,000 rows")
    print("| operator | M | params | FLOPs / sample | predict ms / 1k rows | note |")
    print("|---|---|---|---|---|---|")
    for name, factory in OPERATORS.items():
        for count in (2, 4, 8):
            row = measure(name, factory, count)
            if row is None:
                print(f"| {name} | {count} | - | - | - | needs M > 2 |")
                continue
            ms = f"{row['ms']:.2f}" if row["ms"] is not None else "-"
            print(f"| {name} | {count} | {row['params']:,} | {row['flops']:,} | {ms} | {row['note']} |",
                  flush=True)
            keras.backend.clear_session()


if __name__ == "__main__":
    main()
