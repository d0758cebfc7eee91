"""LoRA against full fine-tuning of one KerasHub backbone inside a fused model.

The same fused model (a BERT encoder, 2 layers, hidden 256, a 30,000-word vocabulary,
64 tokens; its `pooled_output` under a 2-class head), trained for one epoch with Adam,
once with `Branch(bert, lora_rank=4)` and once fully trainable. Each runs in its own
process (`--mode lora` / `--mode full`), side by side one after the other, and reports
its trainable parameters, the peak resident memory of the process (`ru_maxrss`) before
and after `fit`, and the fit's seconds. `KFUSE_QUICK=1`: 64 rows (under a minute).
Run: `PYTHONPATH=. python benchmarks/bench_hub_lora.py`.

Measured here (full mode, 512 rows, `nice`, 2 busy cores):

| mode | trainable params | all params | peak RSS before fit | after fit | fit growth | fit s |
|---|---|---|---|---|---|---|
| LoRA rank 4 | 18,946 | 8,835,330 | 1090 MiB | 1191 MiB | 101 MiB | 8.1 |
| full fine-tuning | 8,817,922 | 8,817,922 | 1091 MiB | 1370 MiB | 280 MiB | 9.9 |

Trainable parameters 0.21% of full; the fit's peak memory growth 0.36x (the peak of the
whole process 0.87x: TensorFlow's own ~1 GiB is the same in both).
"""

import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

QUICK = bool(os.environ.get("KFUSE_QUICK"))
ROWS = 64 if QUICK else 512
SEQ, WORDS, RANK = 64, 30000, 4


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run(mode):
    import keras
    import keras_hub
    import numpy as np

    import kfuse

    keras.utils.set_random_seed(0)
    bert = keras_hub.models.BertBackbone(
        vocabulary_size=WORDS, num_layers=2, num_heads=4, hidden_dim=256, intermediate_dim=512,
        max_sequence_length=SEQ,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    x = {
        "token_ids": rng.integers(1, WORDS, size=(ROWS, SEQ)).astype("int32"),
        "segment_ids": np.zeros((ROWS, SEQ), "int32"),
        "padding_mask": np.ones((ROWS, SEQ), "int32"),
    }
    y = rng.integers(0, 2, size=ROWS)
    lora = {"lora_rank": RANK} if mode == "lora" else {}
    model = kfuse.stack([kfuse.Branch(bert, name="bert", select="pooled_output", **lora)], head=2)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    total = sum(int(np.prod(w.shape)) for w in model.weights)
    before = peak_mib()
    start = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "mode": mode, "trainable": trainable, "weights": total, "peak_before_fit_mib": before,
        "peak_after_fit_mib": peak_mib(), "fit_s": seconds,
    }))  # fmt: skip


def main():
    rows = {}
    for mode in ("lora", "full"):
        done = subprocess.run(
            [sys.executable, __file__, "--mode", mode], capture_output=True, text=True, check=True
        )
        rows[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"rows={ROWS}, one epoch, batch 32, Adam; LoRA rank {RANK}")
    print("| mode | trainable params | all params | peak RSS before fit (MiB) | peak RSS after fit (MiB) | fit growth (MiB) | fit s |")
    print("|---|---|---|---|---|---|---|")
    for mode, r in rows.items():
        growth = r["peak_after_fit_mib"] - r["peak_before_fit_mib"]
        print(f"| {mode} | {r['trainable']:,} | {r['weights']:,} | {r['peak_before_fit_mib']:.0f} | "
              f"{r['peak_after_fit_mib']:.0f} | {growth:.0f} | {r['fit_s']:.1f} |")  # fmt: skip
    lora, full = rows["lora"], rows["full"]
    print(f"trainable: LoRA / full = {lora['trainable'] / full['trainable']:.4f}")
    print(f"peak RSS after fit: LoRA / full = {lora['peak_after_fit_mib'] / full['peak_after_fit_mib']:.2f}")


if __name__ == "__main__":
    if "--mode" in sys.argv:
        run(sys.argv[sys.argv.index("--mode") + 1])
    else:
        main()
