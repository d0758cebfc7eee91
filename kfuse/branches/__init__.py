"""One base network as a branch of a fused graph: the `Branch`, its inputs and outputs,
copies with preprocessing state, KerasHub presets, LoRA and raw-input preprocessing."""

from kfuse.branches.branch import Branch

__all__ = ["Branch"]
