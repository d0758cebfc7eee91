"""Drop TensorFlow's runtime log lines from executed notebooks' stream outputs.

An executed tutorial keeps what its code prints, its tables and figures, and its
warnings; the lines TensorFlow's C++ runtime and its `tensorflow` logger write on their
own (absl's "All log messages before absl::InitializeLog()", the oneDNN and
cpu_feature_guard notices, "INFO:tensorflow:Assets written to: /tmp/...") say nothing
about the tutorial and carry temporary paths, so they are removed; a stream left empty
is dropped.

Usage: python scripts/clean_notebook_outputs.py notebooks/*.ipynb
"""

import json
import re
import sys

TF_LOG = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IWEF]\d{4} [\d:.]+ +\d+ \w+\.cc:\d+\]"
    r"|To enable the following instructions: .* rebuild TensorFlow"
    r"|INFO:tensorflow:Assets written to: )"
)


def is_tf_log(line):
    """True for a line TensorFlow's runtime writes by itself."""
    return bool(TF_LOG.match(line))


def clean(notebook):
    """The notebook (a dict) with TensorFlow's log lines removed from its streams; lines removed."""
    removed = 0
    for cell in notebook["cells"]:
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text = "".join(output["text"])
                lines = text.splitlines(keepends=True)
                left = [line for line in lines if not is_tf_log(line)]
                removed += len(lines) - len(left)
                if not "".join(left).strip():
                    continue
                output["text"] = left
            kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept
    return removed


def main(paths):
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            notebook = json.load(handle)
        removed = clean(notebook)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(notebook, handle, indent=1, ensure_ascii=False)
            handle.write("\n")
        print(f"{path}: {removed} TensorFlow log lines removed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
