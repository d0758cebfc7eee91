"""Two KerasHub backbones fused: predict and head training, side by side in one run.

The bases: a BERT encoder (2 layers, hidden 64, 32 tokens, 1,000 words; its
`pooled_output`) and a ViT (32x32 images, patches of 4, 2 layers, hidden 64; its class
token, `pool="first"`), built from small configs (no download), frozen, fused by concat
under a 2-class head.

1. Predict: `FusedModel.predict` against the two backbones' own `predict` plus the
   combine (`model.top.predict` on their outputs). Goal: fused <= 0.7x.
2. Head training with frozen backbones: `fit` through the graph against `fit_head`
   (the branch outputs computed once, the epochs on the top alone). Same epochs, same
   batch size. Goal: fit_head >= 20x faster.

Medians of interleaved rounds (alternating order), after a warm-up call (one epoch for
the training setups). The training ratio grows with the epochs: `fit` runs the frozen
backbones every epoch, `fit_head` once. Full: 2,048 rows, 20 epochs, 2 repeats (about
4 minutes on 2 busy cores). `KFUSE_QUICK=1`: 256 rows, 10 epochs, one repeat (under a
minute). Run: `PYTHONPATH=. python benchmarks/bench_hub.py`.

Measured here (full mode, `nice`, 2 cores shared with other jobs):

| setup | seconds |
|---|---|
| two backbone predicts + top | 2.121 |
| fused predict | 0.956 (0.45x) |
| fit through the graph, 20 epochs | 40.188 |
| fit_head (branch cache), 20 epochs | 1.548 (26.0x faster) |
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

import kfuse  # noqa: E402

QUICK = bool(os.environ.get("KFUSE_QUICK"))
ROWS = 256 if QUICK else 2048
EPOCHS = 10 if QUICK else 20
REPEATS = 1 if QUICK else 2
BATCH = 128
SEQ, WORDS = 32, 1000


def bases():
    keras.utils.set_random_seed(0)
    bert = keras_hub.models.BertBackbone(
        vocabulary_size=WORDS, num_layers=2, num_heads=4, hidden_dim=64, intermediate_dim=128,
        max_sequence_length=SEQ,
    )  # fmt: skip
    vit = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=4, num_layers=2, num_heads=4, hidden_dim=64,
        mlp_dim=128,
    )  # fmt: skip
    return bert, vit


def data():
    rng = np.random.default_rng(0)
    lengths = rng.integers(4, SEQ + 1, size=ROWS)
    mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype("int32")
    x = {
        "token_ids": rng.integers(1, WORDS, size=(ROWS, SEQ)).astype("int32") * mask,
        "segment_ids": np.zeros((ROWS, SEQ), "int32"),
        "padding_mask": mask,
        "img": rng.uniform(size=(ROWS, 32, 32, 3)).astype("float32"),
    }
    return x, rng.integers(0, 2, size=ROWS)


def timed(fns, **warm):
    for fn in fns.values():
        fn(**warm)  # warm-up (tracing)
    times = {name: [] for name in fns}
    for round_ in range(REPEATS):
        for name in list(fns) if round_ % 2 == 0 else list(fns)[::-1]:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main():
    bert, vit = bases()
    x, y = data()
    tokens = {k: x[k] for k in ("token_ids", "segment_ids", "padding_mask")}
    model = kfuse.stack(
        [kfuse.Branch(bert, name="bert", select="pooled_output", trainable=False),
         kfuse.Branch(vit, name="vit", inputs="img", pool="first", trainable=False)],
        fusion="concat", head=2,
    )  # fmt: skip

    def separate():
        text = bert.predict(tokens, batch_size=BATCH, verbose=0)["pooled_output"]
        image = vit.predict(x["img"], batch_size=BATCH, verbose=0)[:, 0]
        return model.top.predict([text, image], batch_size=BATCH, verbose=0)

    np.testing.assert_allclose(model.predict(x, batch_size=BATCH, verbose=0), separate(), atol=1e-4)
    predict = timed({
        "two backbone predicts + top": separate,
        "fused predict": lambda: model.predict(x, batch_size=BATCH, verbose=0),
    })  # fmt: skip
    weights = model.get_weights()

    def through_graph(epochs=EPOCHS):
        model.set_weights(weights)
        model.fit(x, y, epochs=epochs, batch_size=BATCH, verbose=0)

    def head_only(epochs=EPOCHS):
        model.set_weights(weights)
        model.fit_head(x, y, epochs=epochs, batch_size=BATCH, verbose=0)

    training = timed(
        {"fit (through the graph)": through_graph, "fit_head (branch cache)": head_only}, epochs=1
    )
    print(f"rows={ROWS} batch={BATCH} epochs={EPOCHS} repeats={REPEATS} (median seconds)")
    print("| setup | seconds |")
    print("|---|---|")
    for name, seconds in {**predict, **training}.items():
        print(f"| {name} | {seconds:.3f} |")
    ratio = predict["fused predict"] / predict["two backbone predicts + top"]
    speedup = training["fit (through the graph)"] / training["fit_head (branch cache)"]
    print(f"fused predict / separate predicts + combine = {ratio:.2f}x (goal <= 0.7x)")
    print(f"fit / fit_head with frozen hub backbones = {speedup:.1f}x (goal >= 20x)")


if __name__ == "__main__":
    main()
