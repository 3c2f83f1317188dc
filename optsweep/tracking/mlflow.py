"""MLflow: experiment = the sweep, run = the job, through ``MlflowClient`` (no global active run,
so that export and parallel jobs never share state).

One MLflow run per run directory and config: its id is kept in the run directory's tracking.json,
and the run is tagged with ``run_dir`` and ``config_fingerprint``; a resumed job, or an export of a
run already there, continues that run and logs only the epochs and params it does not hold yet.

The default store is one SQLite file that parallel jobs (joblib launcher) share: every write goes
through an exclusive lock on a file beside it, since SQLite allows one writer and MLflow creates
its tables on first use (two processes doing so at once collide). A server gets bounded requests
(``http_retries``, ``http_timeout_s``): MLflow's own default retries with backoff for minutes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from optsweep.contract import METRIC_COLUMNS, Status
from optsweep.tracking import RunInfo, end_facts, metrics_of, read_state, write_state

# How each end shows in MLflow's UI: diverged and pruned are results of the sweep, not failures.
RUN_STATUS = {Status.COMPLETED: "FINISHED", Status.DIVERGED: "FINISHED", Status.PRUNED: "FINISHED",
              Status.INTERRUPTED: "KILLED", Status.FAILED: "FAILED"}
BATCH = 100  # MLflow takes at most 100 params (and 1000 metrics) per log_batch
SQLITE = "sqlite:///"
# train_loss: measured in every epoch, so it tells which are in
EVERY_EPOCH_METRIC = METRIC_COLUMNS[1]


def bound_requests(retries: int, timeout_s: int) -> None:
    """MLflow reads these documented variables at each request (defaults: 7 retries with
    exponential backoff from 2 s, 120 s timeout each: minutes against a server that is down)."""
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(retries)
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(timeout_s)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"] = "0"


def sqlite_file(uri: str) -> Optional[Path]:
    """The database file of a ``sqlite:///`` URI (relative to the working directory), else None."""
    return Path(uri[len(SQLITE):]) if uri.startswith(SQLITE) else None


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """One writer at a time on a SQLite store, across processes; nothing for a server."""
    database = sqlite_file(uri)
    if database is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def now_ms() -> int:
    return int(time.time() * 1000)


def row_metrics(row: Mapping) -> list:
    step, timestamp = int(float(row["epoch"])), now_ms()
    return [Metric(key, value, timestamp, step) for key, value in metrics_of(row).items()]


class Tracker:
    def __init__(self, settings: Mapping[str, Any]) -> None:
        bound_requests(int(settings["http_retries"]), int(settings["http_timeout_s"]))
        self.uri = str(settings["tracking_uri"])
        self.experiment = settings["experiment"]
        self.client: Optional[MlflowClient] = None  # see connect()
        self.run_id: Optional[str] = None

    # --- finding the run ---

    def experiment_id(self, info: RunInfo) -> str:
        name = self.experiment or info.sweep
        found = self.client.get_experiment_by_name(name)
        return found.experiment_id if found else self.client.create_experiment(name)

    def existing_run(self, info: RunInfo, experiment_id: str):
        """This run directory's MLflow run for this config: the recorded id, else the tags."""
        state = read_state(info.run_dir, "mlflow")
        if state.get("tracking_uri") == self.uri and \
                state.get("config_fingerprint") == info.tags["config_fingerprint"]:
            try:
                return self.client.get_run(state["run_id"])
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
        query = (f"tags.run_dir = '{info.tags['run_dir']}' and "
                 f"tags.config_fingerprint = '{info.tags['config_fingerprint']}'")
        runs = self.client.search_runs([experiment_id], query, max_results=1)
        return runs[0] if runs else None

    def connect(self) -> None:
        """The client, made under the store's lock: its first use creates or migrates tables."""
        if self.client is None:
            self.client = MlflowClient(self.uri)
            self.client.search_experiments(max_results=1)

    def recorded(self, info: RunInfo) -> bool:
        """True when this run is in the store and ended (an export leaves it alone)."""
        with store_lock(self.uri):
            self.connect()
            run = self.existing_run(info, self.experiment_id(info))
        return run is not None and run.info.status != "RUNNING"

    # --- the three calls ---

    def start(self, info: RunInfo) -> None:
        with store_lock(self.uri):
            self.connect()
            experiment_id = self.experiment_id(info)
            run = self.existing_run(info, experiment_id)
            if run is None:
                run = self.client.create_run(experiment_id, tags=info.tags, run_name=info.name)
                logged_params, logged_steps = {}, set()
            else:
                self.client.update_run(run.info.run_id, status="RUNNING")
                logged_params = run.data.params
                history = self.client.get_metric_history(run.info.run_id, EVERY_EPOCH_METRIC)
                logged_steps = {metric.step for metric in history}
            self.run_id = run.info.run_id
            write_state(info.run_dir, "mlflow",
                        {"run_id": self.run_id, "tracking_uri": self.uri,
                         "config_fingerprint": info.tags["config_fingerprint"]})
            # a param cannot change; a resumed run keeps the first value of a volatile key
            params = [Param(k, str(v)[:6000]) for k, v in info.params.items()
                      if k not in logged_params]
            for first in range(0, len(params), BATCH):
                self.client.log_batch(self.run_id, params=params[first:first + BATCH])
            metrics = [m for row in info.rows if int(float(row["epoch"])) not in logged_steps
                       for m in row_metrics(row)]
            for first in range(0, len(metrics), 1000):
                self.client.log_batch(self.run_id, metrics=metrics[first:first + 1000])

    def epoch(self, row: Mapping) -> None:
        with store_lock(self.uri):
            self.client.log_batch(self.run_id, metrics=row_metrics(row))

    def end(self, summary: Mapping) -> None:
        facts = end_facts(summary)
        step, timestamp = int(facts["epochs_completed"] or 0), now_ms()
        metrics = [Metric(key, float(facts[key]), timestamp, step)
                   for key in ("objective", "best_epoch") if facts[key] is not None]
        tags = [RunTag("status", facts["status"]),
                RunTag("objective_name", str(facts["objective_name"]))]
        with store_lock(self.uri):
            self.client.log_batch(self.run_id, metrics=metrics, tags=tags)
            self.client.set_terminated(self.run_id, status=RUN_STATUS[Status(facts["status"])])
