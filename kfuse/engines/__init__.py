"""Independent fits (a `Stacker`'s fold models and refits, bagging and voting members) on the
engine the user picks: threads in this process (the default, `n_jobs`), local processes
(loky), Ray or Dask, chosen as scikit-learn users choose, with `joblib.parallel_config`:

```python
import joblib
from ray.util.joblib import register_ray

register_ray()
with joblib.parallel_config(backend="ray"):   # or "loky" / "dask" (with a distributed.Client)
    stacker.fit(x, y)
```

Each fit ships as a self-contained job (`kfuse.engines.job.Job`: what to build, its fit
settings, its seed and its rows); the data travels once per worker (Ray's object store, a Dask
scatter, memory-mapped files for local processes); the results come back as weights and
predictions, the same, bit for bit, as a run in this process. Ray and Dask are optional
extras (`pip install "kfuse[ray]"`, `"kfuse[dask]"`), imported only when chosen.
"""

from kfuse.engines.choice import Engine, active_engine, use
from kfuse.engines.job import Job, JobError, shippable
from kfuse.engines.run import run_jobs

__all__ = ["Engine", "Job", "JobError", "active_engine", "run_jobs", "shippable", "use"]
