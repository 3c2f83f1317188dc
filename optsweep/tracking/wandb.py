"""Weights & Biases: group = the sweep, run = the job, files under ``<run dir>/wandb/``.

``mode: auto`` runs online when an API key is configured (``WANDB_API_KEY``, or ``wandb login``'s
netrc entry) and offline otherwise, so that a machine without an account still records everything
(``wandb sync`` uploads it later). The run's id is kept in tracking.json: a resumed job goes on
under the same id.
"""

from __future__ import annotations

import netrc
import os
import uuid
from typing import Any, Mapping
from urllib.parse import urlparse

import wandb

from optsweep.contract import PROBLEMS, Status
from optsweep.tracking import RunInfo, end_facts, metrics_of, read_state, write_state

TAG_LENGTH = 64  # W&B refuses longer tags


def api_key_configured() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(mode: str) -> str:
    if mode == "auto":
        return "online" if api_key_configured() else "offline"
    return mode


class Tracker:
    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.project = str(settings["project"])
        self.entity = settings["entity"]
        self.mode = resolve_mode(str(settings["mode"]))
        self.run = None

    def recorded(self, info: RunInfo) -> bool:
        return bool(read_state(info.run_dir, "wandb"))

    def start(self, info: RunInfo) -> None:
        state = read_state(info.run_dir, "wandb")
        if state.get("config_fingerprint") != info.tags["config_fingerprint"]:
            state = {"id": uuid.uuid4().hex[:8],
                     "config_fingerprint": info.tags["config_fingerprint"]}
            write_state(info.run_dir, "wandb", state)
        tags = [f"{k}:{v}"[:TAG_LENGTH] for k, v in info.tags.items()
                if k not in ("run_dir", "config_fingerprint")]
        self.run = wandb.init(
            project=self.project, entity=self.entity, group=info.sweep, name=info.name,
            id=state["id"], resume="allow", mode=self.mode, dir=str(info.run_dir),
            config={**info.params, "run_dir": info.tags["run_dir"],
                    "config_fingerprint": info.tags["config_fingerprint"]},
            tags=tags, reinit="create_new", settings=wandb.Settings(console="off", silent=True))
        for row in info.rows:
            self.epoch(row)

    def epoch(self, row: Mapping) -> None:
        self.run.log(metrics_of(row), step=int(float(row["epoch"])))

    def end(self, summary: Mapping) -> None:
        facts = end_facts(summary)
        self.run.summary.update({k: facts[k] for k in ("status", "objective", "objective_name",
                                                       "best_epoch")})
        self.run.finish(exit_code=1 if Status(facts["status"]) in PROBLEMS else 0)
