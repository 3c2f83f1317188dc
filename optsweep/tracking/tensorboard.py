"""TensorBoard: event files in the run directory itself, so that ``tensorboard --logdir
multirun/<sweep>`` shows one TensorBoard run per job, named by its folder.

The config goes in as one HParams session (``torch.utils.tensorboard.summary.hparams``) written
into the run's own writer: ``SummaryWriter.add_hparams`` would open a sub-run on every call. No
experiment summary is written, so TensorBoard builds the HParams table from every job's session
and every scalar tag: a whole sweep shows as one table.

A resumed run opens a writer with ``purge_step=1``: TensorBoard then hides what earlier writers
logged from epoch 1 on, and the finished epochs are written again, each epoch exactly once.
"""

from __future__ import annotations

from typing import Any, Mapping

from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from optsweep.contract import Status
from optsweep.tracking import RunInfo, end_facts, metrics_of

# HParams knows success, failure, running and unknown; a stopped run is neither of the first two.
SESSION_STATUS = {Status.COMPLETED: api_pb2.STATUS_SUCCESS, Status.DIVERGED: api_pb2.STATUS_FAILURE,
                  Status.FAILED: api_pb2.STATUS_FAILURE, Status.PRUNED: api_pb2.STATUS_UNKNOWN,
                  Status.INTERRUPTED: api_pb2.STATUS_UNKNOWN}


def event_files(run_dir) -> list:
    return sorted(run_dir.glob("events.out.tfevents.*"))


def session_end(status: Status) -> Summary:
    """The HParams session's end with the run's status (torch's ``hparams`` always says success)."""
    content = HParamsPluginData(session_end_info=SessionEndInfo(status=SESSION_STATUS[status]))
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(
        plugin_name="hparams", content=content.SerializeToString()))
    return Summary(value=[Summary.Value(tag="_hparams_/session_end_info", metadata=metadata)])


class Tracker:
    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.flush_secs = int(settings["flush_secs"])
        self.writer = None

    def recorded(self, info: RunInfo) -> bool:
        """True when the run directory holds event files already (an export leaves it alone)."""
        return bool(event_files(info.run_dir))

    def start(self, info: RunInfo) -> None:
        self.writer = SummaryWriter(str(info.run_dir), flush_secs=self.flush_secs, purge_step=1)
        hparam_values = {**info.params, **{f"tag.{k}": v for k, v in info.tags.items()
                                           if k != "run_dir"}}  # one value per job: no column
        _, session_start, _ = hparams(hparam_values, {})
        self.writer.file_writer.add_summary(session_start)
        for key in ("run_dir", "config_fingerprint"):
            self.writer.add_text(key, info.tags[key], 0)
        for row in info.rows:
            self.epoch(row)

    def epoch(self, row: Mapping) -> None:
        for key, value in metrics_of(row).items():
            self.writer.add_scalar(key, value, int(row["epoch"]))

    def end(self, summary: Mapping) -> None:
        facts = end_facts(summary)
        step = int(facts["epochs_completed"] or 0)
        self.writer.add_text("status", facts["status"], step)
        for key in ("objective", "best_epoch"):
            if facts[key] is not None:
                self.writer.add_scalar(f"summary/{key}", float(facts[key]), step)
        self.writer.file_writer.add_summary(session_end(Status(facts["status"])))
        self.writer.close()
