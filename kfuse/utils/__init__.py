"""Small helpers with no kfuse imports above them: backend checks, the console, JSON-ready
settings, YAML with line marks, names, fingerprints, the one run store of every `work_dir`
and the one progress bar of long jobs."""
