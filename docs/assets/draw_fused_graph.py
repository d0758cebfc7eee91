"""Draw docs/assets/fused_graph.png: the graph `kfuse.stack` returns for the README's example.

Run from the repository root: `python docs/assets/draw_fused_graph.py`.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

BOXES = {  # name: (x, y, label, colour)
    "input": (0.5, 0.88, 'input "signal"\n(40,)', "#e8eef7"),
    "cnn": (0.2, 0.64, "branch cnn\nsaved CNN, frozen\n-> probabilities", "#fde9d9"),
    "gru": (0.5, 0.64, "branch gru\nsaved GRU, frozen\n-> probabilities", "#fde9d9"),
    "mlp": (0.8, 0.64, "branch mlp\nnew Dense(64)\ntrainable", "#e2f0d9"),
    "fusion": (0.5, 0.42, "fusion: concat", "#fff2cc"),
    "meta": (0.5, 0.27, "meta-learner: Dense(64)", "#fff2cc"),
    "head": (0.5, 0.12, "head: Classification(10) -> logits", "#fff2cc"),
}
EDGES = [("input", "cnn"), ("input", "gru"), ("input", "mlp"), ("cnn", "fusion"),
         ("gru", "fusion"), ("mlp", "fusion"), ("fusion", "meta"), ("meta", "head")]


def draw(path):
    fig, ax = plt.subplots(figsize=(7.5, 5.2), dpi=110)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.add_patch(FancyBboxPatch((0.03, 0.03), 0.94, 0.74, boxstyle="round,pad=0.01",
                                fill=False, linestyle="--", edgecolor="#777777"))
    ax.text(0.05, 0.08, "one keras.Model:\nfit, save as .keras,\nexport a SavedModel",
            fontsize=8.5, color="#555555")
    ax.add_patch(FancyBboxPatch((0.3, 0.05), 0.4, 0.42, boxstyle="round,pad=0.01",
                                fill=False, linestyle=":", edgecolor="#b58900"))
    ax.text(0.71, 0.06, "model.top", fontsize=8.5, color="#b58900")
    for x, y, label, colour in BOXES.values():
        ax.text(x, y, label, ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round,pad=0.45", facecolor=colour, edgecolor="#444444"))
    for a, b in EDGES:
        (xa, ya), (xb, yb) = BOXES[a][:2], BOXES[b][:2]
        ax.add_patch(FancyArrowPatch((xa, ya - 0.055), (xb, yb + 0.05), arrowstyle="-|>",
                                     mutation_scale=12, color="#444444"))
    fig.savefig(path, bbox_inches="tight")


if __name__ == "__main__":
    draw(Path(__file__).with_name("fused_graph.png"))
