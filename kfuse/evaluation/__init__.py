"""Evaluation: `compare()` models (metrics, diversity, significance, branch contributions)
and render the `Report` as a table, Markdown, or one self-contained HTML file.

Example:

```python
import numpy as np, kfuse

y = np.array([0, 1, 1, 0])
report = kfuse.compare({"a": np.array([[.8, .2], [.3, .7], [.6, .4], [.9, .1]]),
                        "b": np.array([[.6, .4], [.2, .8], [.1, .9], [.4, .6]])}, y=y)
report.table
```
"""

from kfuse.evaluation.report import Report, compare, write_demo_report
from kfuse.evaluation.robustness import RobustnessResult, robustness_sweep

__all__ = ["Report", "RobustnessResult", "compare", "robustness_sweep", "write_demo_report"]
