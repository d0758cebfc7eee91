"""The training engine: traced epochs, in-memory predict, compiled copies trained in turn or
side by side, and the schedulers that run many fits."""
