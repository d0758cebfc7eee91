"""A KerasTuner search spread over a Ray cluster: KerasTuner's own chief/worker mode, its
processes launched as Ray actors.

KerasTuner distributes a search itself: one process, the chief, serves the oracle over
gRPC and runs no trial; each worker asks it for a trial, trains it and reports the score.
Every process reads three environment variables: `KERASTUNER_TUNER_ID` ("chief",
"tuner0", ...), `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT`. `search_on_ray`
starts the chief as a Ray actor (no CPU reserved: it only answers requests), reads its
node's address and a free port there, then starts `num_workers` worker actors (one CPU,
or one GPU, each) with those variables; the data travels once, through Ray's object
store. The processes end with the search.

The tuner's `directory` must be a folder every node reaches (one machine: any folder;
a cluster: NFS or similar): workers write each trial's weights there and the chief
reads the best trial's back.

Example (not run here: it starts a Ray cluster):

```python
import keras, kfuse

def build_tuner():
    base = keras.saving.load_model("base.keras")
    hypermodel = kfuse.tuning.FusionHyperModel([kfuse.Branch(base, name="a")], head=10)
    return kfuse.tuning.make_tuner(hypermodel, max_trials=8, directory="/shared/tuning")

result = kfuse.tuning.search_on_ray(build_tuner, x, y, num_workers=4, epochs=3,
                                    validation_data=(x_val, y_val))
result.best_model, result.best_hyperparameters
```
"""

import dataclasses
import os
import socket
import warnings

from kfuse.utils.ray_session import check_shippable, grow_gpu_memory, ray_session, require_ray

FEATURE = "kfuse.tuning.search_on_ray"
_BUILD_HINT = (
    "a module-level function build_tuner() that makes the hypermodel and the tuner inside "
    "the worker (load base models from their .keras files there), or a functools.partial of one"
)


@dataclasses.dataclass
class RaySearchResult:
    """What `search_on_ray` returns.

    Attributes:
        trials: {trial id: {"status", "score", "hyperparameters"}} as the chief's oracle ends.
        best_trial: the best trial's id; `best_hyperparameters` its values.
        best_model: the best trial's model with its trained weights (loaded by the chief).
        trials_by_worker: {tuner id: [trial ids it ran]}.
    """

    trials: dict
    best_trial: str
    best_hyperparameters: dict
    best_model: object
    trials_by_worker: dict


def search_on_ray(
    build_tuner, x, y=None, *, num_workers=2, use_gpu=False, address=None, **search_kwargs
):
    """Run `build_tuner().search(x, y, **search_kwargs)` as KerasTuner's chief and
    `num_workers` workers on Ray; return the trials and the best model.

    Args:
        build_tuner (Callable): returns a KerasTuner tuner (e.g. `kfuse.tuning.make_tuner`)
            whose `directory` every node reaches. Called in every process, so it must
            pickle: a module-level function, not a closure over a live dataset or lock.
        x, y: the training data, sent once through Ray's object store.
        num_workers (int): trial-running workers (the chief runs none).
        use_gpu (bool): one GPU per worker (TensorFlow memory growth on).
        address (str | None): the Ray cluster ('ray://head:10001', 'auto'); None starts a
            local one; a connection already open in this process is used as it is.
        **search_kwargs (Any): for `tuner.search` (epochs, validation_data, batch_size...);
            they pickle with the data.

    Returns:
        RaySearchResult: every trial, the best trial and its model, who ran what.
    """
    require_ray(FEATURE)
    check_shippable(build_tuner, "build_tuner", _BUILD_HINT)
    if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 1:
        raise ValueError(f"num_workers must be a whole number >= 1; received {num_workers!r}")
    with ray_session(address, FEATURE) as ray:
        data = ray.put({"x": x, "y": y, **search_kwargs})
        chief = ray.remote(num_cpus=0)(_TunerProcess).remote()
        workers = []
        try:
            ip, port = ray.get(chief.oracle_address.remote())
            env = {"KERASTUNER_ORACLE_IP": ip, "KERASTUNER_ORACLE_PORT": str(port)}
            report = chief.search.remote(build_tuner, data, dict(env, KERASTUNER_TUNER_ID="chief"))
            resources = {"num_gpus": 1} if use_gpu else {"num_cpus": 1}
            workers = [ray.remote(**resources)(_TunerProcess).remote() for _ in range(num_workers)]
            runs = [
                worker.search.remote(
                    build_tuner, data, dict(env, KERASTUNER_TUNER_ID=f"tuner{i}"), use_gpu
                )
                for i, worker in enumerate(workers)
            ]
            ran, report = _wait_all(ray, runs, report)
        except ray.exceptions.RayError as error:
            raise RuntimeError(f"{FEATURE}: the search failed on a Ray process: {error}") from error
        finally:
            for process in [chief, *workers]:
                ray.kill(process)
    report["trials_by_worker"] = {f"tuner{i}": ids for i, ids in enumerate(ran)}
    return RaySearchResult(**report)


class _TunerProcess:
    """One KerasTuner process (chief or worker) in its own Ray actor."""

    def oracle_address(self):
        import ray

        with socket.socket() as probe:  # a port free on this node now; the chief binds it next
            probe.bind(("", 0))
            return ray.util.get_node_ip_address(), probe.getsockname()[1]

    def search(self, build_tuner, data, env, use_gpu=False):
        os.environ.update(env)  # KerasTuner reads its role when the tuner is made
        if use_gpu:
            grow_gpu_memory()
        data = dict(data)  # Ray hands the object-store copy over resolved
        tuner = build_tuner()
        ran = []
        begin = tuner.on_trial_begin

        def on_trial_begin(trial):  # records the trials this worker runs
            ran.append(trial.trial_id)
            return begin(trial)

        tuner.on_trial_begin = on_trial_begin
        tuner.search(data.pop("x"), data.pop("y"), **data)
        if env["KERASTUNER_TUNER_ID"] != "chief":
            return ran
        return _chief_report(tuner)


def _wait_all(ray, runs, report):
    """Wait for every worker and the chief; the first failure raises at once (a worker
    waiting on a chief that died, or the other way round, would wait forever)."""
    pending = [report, *runs]
    with warnings.catch_warnings():  # the best model's optimizer never trained in the chief
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            ray.get(done)  # raises the process's error
        return ray.get(runs), ray.get(report)


def _chief_report(tuner):
    trials = {
        t.trial_id: {
            "status": t.status,
            "score": t.score,
            "hyperparameters": dict(t.hyperparameters.values),
        }
        for t in tuner.oracle.trials.values()
    }
    best = tuner.oracle.get_best_trials(1)[0]
    return {
        "trials": trials,
        "best_trial": best.trial_id,
        "best_hyperparameters": dict(best.hyperparameters.values),
        "best_model": tuner.get_best_models(1)[0],
    }
