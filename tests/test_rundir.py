"""The run directory's one reader and writer: runs written before it are still recognised, a failed
run records its own objective, and a config flattens one way for every reader."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from optsweep import contract
from optsweep.contract import Status
from optsweep.rundir import RunDir, SweepDir, UnreadableFile, flatten
from tests.conftest import QUICK, make_cfg

# Written by `python -m optsweep` (QUICK overrides) on main at 7ed5ab7, before RunDir existed:
# summary.json, metrics.csv and .hydra/ exactly as that code left them (checkpoint deleted at the
# end).
BEFORE = Path(__file__).parent / "fixtures" / "run_before_rundir"
# That run's config_fingerprint, as 7ed5ab7 computed and recorded it: a changed key list or hashing
# rule that moved it would retrain or refuse every finished run on disk.
FINGERPRINT_BEFORE = "b4c06de68d4ef81b"


def test_the_fingerprint_of_a_run_written_before_is_unchanged():
    cfg = OmegaConf.create(RunDir(BEFORE).read_config())
    assert RunDir(BEFORE).summary()["config_fingerprint"] == FINGERPRINT_BEFORE
    assert contract.config_fingerprint(cfg) == FINGERPRINT_BEFORE


def test_a_finished_run_written_before_is_skipped_not_trained_again(tmp_path):
    from optsweep.train import train

    run_dir = tmp_path / "run"
    shutil.copytree(BEFORE, run_dir)
    before = (run_dir / contract.METRICS_FILE).read_text()
    outcome = train(OmegaConf.create(RunDir(run_dir).read_config()), run_dir)
    assert outcome.status == Status.COMPLETED
    assert outcome.objective == RunDir(BEFORE).summary()["objective"]
    assert (run_dir / contract.METRICS_FILE).read_text() == before
    assert not (run_dir / contract.CHECKPOINT_FILE).exists()


def test_the_reader_gives_a_run_written_before_its_config_overrides_choices_and_metrics():
    record = RunDir(BEFORE)
    assert record.read_overrides() == QUICK
    assert record.hydra_choices()["optimizer"] == "adam" == record.choices()["optimizer"]
    flat = record.flat_config()
    assert flat["optimizer.lr"] == 0.001 and flat["data.mean"] == "[0.485, 0.456, 0.406]"
    assert flat["optimizer.betas"] is None
    assert [row["epoch"] for row in record.metrics()] == [1.0]
    assert record.status() == Status.COMPLETED


def test_a_failed_setup_records_the_runs_own_objective_at_its_worst_value(tmp_path):
    from optsweep.errors import OptsweepError
    from optsweep.train import train

    cfg = make_cfg([*QUICK, "trainer.objective=val_loss", "+optimizer.foo=1"])
    with pytest.raises(OptsweepError, match="optimizer.foo"):
        train(cfg, tmp_path)
    summary = RunDir(tmp_path).summary()
    assert summary["status"] == "failed"
    assert summary["objective_name"] == "val_loss"
    assert summary["objective"] == contract.WORST_LOSS


@pytest.mark.parametrize("cfg, recorded", [
    ({"trainer": {"objective": "test_loss"}, "data": {"val_fraction": 0.1}}, "test_loss"),
    ({"trainer": {"objective": "auto"}, "data": {"val_fraction": 0.0}}, "test_acc1"),
    ({"trainer": {"objective": "bogus"}, "data": {"val_fraction": 0.0}}, "test_acc1"),
    ({"trainer": {}}, "val_acc1"),  # nothing readable: the auto rule with a validation split
])
def test_a_failed_run_records_its_objective_or_the_auto_rule_where_the_config_is_broken(
        tmp_path, cfg, recorded):
    outcome = RunDir(tmp_path).write_failed_summary("boom", cfg)
    assert (outcome.objective_name, outcome.objective) == (recorded,
                                                          contract.worst_value(recorded))


def test_flatten_keeps_scalars_and_writes_lists_and_empty_groups_as_json():
    flat = flatten({"a": {"b": 1, "c": [0.9, 0.99], "d": None, "e": {}}, "f": "x", "g": True})
    assert flat == {"a.b": 1, "a.c": "[0.9, 0.99]", "a.d": None, "a.e": "{}", "f": "x",
                    "g": True}


def test_a_strict_read_names_the_file_and_a_lenient_one_gives_none(tmp_path):
    record = RunDir(tmp_path)
    record.hydra_dir.mkdir()
    record.config_file.write_text("[unclosed")
    with pytest.raises(UnreadableFile, match=r"^\.hydra/config\.yaml is not valid YAML"):
        record.read_config()
    assert record.config() is None and record.flat_config() == {}
    record.summary_file.write_text('{"status": "exploded"}')
    with pytest.raises(UnreadableFile, match="status 'exploded'"):
        record.read_summary()


def test_hydras_own_config_is_one_lenient_read_behind_the_choices(tmp_path):
    hydra = RunDir(BEFORE).hydra_config()
    assert hydra["mode"] == "RUN" and hydra["runtime"]["choices"]["optimizer"] == "adam"
    assert hydra["sweeper"]["_target_"].endswith("BasicSweeper")
    record = RunDir(tmp_path)
    assert record.hydra_config() == {} == record.hydra_choices()  # no .hydra/hydra.yaml
    record.hydra_dir.mkdir()
    record.hydra_file.write_text("hydra: [unclosed")
    assert record.hydra_config() == {} == record.hydra_choices()


def test_a_sweep_folder_keeps_its_command_start_and_jobs(tmp_path):
    sweep = SweepDir(tmp_path)
    assert sweep.command() is None
    sweep.write_command(["sweep=quickstart"])
    assert sweep.command() == ["sweep=quickstart"]
    assert sweep.mark_started() == sweep.started_file.stat().st_mtime_ns
    shutil.copytree(BEFORE, tmp_path / "0")
    assert [job.path for job in sweep.jobs()] == [tmp_path / "0"]
    assert sweep.optuna_db == tmp_path / contract.OPTUNA_DB_FILE


@pytest.mark.parametrize("key, free", [("data.root", True), ("trainer.num_threads", True),
                                       ("trainer.seed", False), ("trainer.device", False),
                                       ("optimizer.lr", False), ("root", False)])
def test_the_result_free_keys_are_named_by_group_and_key(key, free):
    assert contract.result_free(key) is free
