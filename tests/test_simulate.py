"""workload=simulated: the model's numbers against hand-computed values, its noise against its
stated sizes, the task's run directories, statuses and errors, and the whole benchmark without
torch naming the optimizer whose truth is best."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from optsweep import contract
from optsweep.analysis import stats
from optsweep.conf_tree import conf_dir
from optsweep.contract import Status
from optsweep.dispatch import run_task
from optsweep.errors import ConfigError
from optsweep.optim.check import REFUSED
from optsweep.simulate import model
from optsweep.simulate.task import SimulatedCrash, check, simulate
from optsweep.task import StopRun, is_simulated
from tests import processes
from tests.conftest import make_cfg

# one optimizer's invented numbers, round enough to compute by hand
SPEC = {"peak": 0.8, "lr": 1e-3, "width": 1.0, "diverge_lr": 1e-1, "test_gap": -0.02,
        "speed": 2.0, "step_cost": 3.0}
SIM = {"classes": 10, "seed_shared_sd": 0.0, "seed_sd": 0.0, "diverge_sd": 0.0,
       "val_size": 5000, "test_size": 10000, "train_size": 45000, "weight_decay_gain": 0.01,
       "weight_decay_best": 1e-3, "crash_rate": 0.0, "epoch_seconds": 0.0,
       "optimizers": {"opt": SPEC}}
OPT = model.OptimizerModel.of(SIM, "opt")


def sim(**changes) -> dict:
    return {**SIM, **changes}


def simulated(*overrides: str):
    return make_cfg(["workload=simulated", *overrides])


# --- the model, by hand ---------------------------------------------------------------------

def test_effective_lr_couples_momentum_and_d_coef_with_lr():
    assert model.effective_lr({"lr": 1e-3}) == 1e-3
    assert model.effective_lr({"lr": 1e-4, "momentum": 0.9}) == pytest.approx(1e-3)
    assert model.effective_lr({"lr": 1.0, "d_coef": 0.5}) == 0.5
    # a boolean (RMSprop's centered) or a missing momentum leaves lr alone
    assert model.effective_lr({"lr": 2e-3, "momentum": True}) == 2e-3


def test_final_margin_falls_to_half_one_width_away_and_weight_decay_adds_its_gain():
    peak_margin = 0.8 - 0.1
    assert model.final_margin(SIM, OPT, {"lr": 1e-3}) == pytest.approx(peak_margin)
    # one decade (one width) from the best lr, on either side: half the margin
    assert model.final_margin(SIM, OPT, {"lr": 1e-2}) == pytest.approx(peak_margin / 2)
    assert model.final_margin(SIM, OPT, {"lr": 1e-4}) == pytest.approx(peak_margin / 2)
    # two decades: 2^-4 of it
    assert model.final_margin(SIM, OPT, {"lr": 1e-5}) == pytest.approx(peak_margin / 16)
    # the same effective lr through momentum: the same margin
    assert model.final_margin(SIM, OPT, {"lr": 1e-3, "momentum": 0.9}) == pytest.approx(
        peak_margin / 2)
    # weight decay at its best adds the gain; a decade away half of it; 0 adds nothing
    assert model.final_margin(SIM, OPT, {"lr": 1e-3, "weight_decay": 1e-3}) == pytest.approx(
        peak_margin + 0.01)
    assert model.final_margin(SIM, OPT, {"lr": 1e-3, "weight_decay": 1e-2}) == pytest.approx(
        peak_margin + 0.005)
    assert model.final_margin(SIM, OPT, {"lr": 1e-3, "weight_decay": 0}) == pytest.approx(
        peak_margin)
    # never above 1 - chance
    high = sim(optimizers={"opt": {**SPEC, "peak": 1.0}})
    assert model.final_margin(high, model.OptimizerModel.of(high, "opt"),
                              {"lr": 1e-3, "weight_decay": 1e-3}) == pytest.approx(0.9)


def test_progress_reaches_its_margin_at_the_last_epoch_and_half_its_asymptote_at_speed():
    assert model.progress(10, 10, 2.0) == pytest.approx(1.0)
    # speed = 2 epochs: the asymptote's half after 2 epochs, scaled to reach 1 at epoch 10
    assert model.progress(2, 10, 2.0) == pytest.approx(0.5 / (1 - 2 ** -5))
    assert model.progress(1, 10, 2.0) < model.progress(2, 10, 2.0) < model.progress(9, 10, 2.0)


def test_divergence_comes_earlier_the_further_past_the_edge():
    assert model.divergence_epoch(0.0, 10) is None
    assert model.divergence_epoch(-0.3, 10) is None
    assert model.divergence_epoch(0.25, 10) == 8  # ceil(10 x 0.75)
    assert model.divergence_epoch(0.5, 10) == 5
    assert model.divergence_epoch(1.0, 10) == 1  # a decade past: at once
    assert model.divergence_epoch(3.0, 10) == 1
    assert model.overshoot(OPT, {"lr": 1.0}) == pytest.approx(1.0)


def test_diverge_probability_is_phi_of_the_overshoot_in_jitter_sds():
    jittery = sim(diverge_sd=0.1)
    assert model.diverge_probability(jittery, OPT, {"lr": 1e-1}) == pytest.approx(0.5)
    # 0.1 decades past the edge = 1 sd: Phi(1)
    assert model.diverge_probability(jittery, OPT, {"lr": 10 ** -0.9}) == pytest.approx(
        0.841344746, abs=1e-6)
    assert model.diverge_probability(SIM, OPT, {"lr": 0.2}) == 1.0  # no jitter: a step
    assert model.diverge_probability(SIM, OPT, {"lr": 0.05}) == 0.0


def test_top5_and_loss_follow_their_stated_formulas():
    assert model.top5(0.5, SIM) == pytest.approx(0.5 + 0.5 * 4 / 9)
    assert model.top5(1.0, SIM) == 1.0
    assert model.top5(0.3, sim(classes=3)) == 1.0  # 5 of 3 classes: every guess is in
    assert model.loss(0.1, SIM) == pytest.approx(math.log(10))  # chance
    assert model.loss(1.0, SIM) == 0.0
    assert model.loss(0.55, SIM) == pytest.approx(math.log(10) * 0.5)


def test_truth_counts_a_diverging_seed_at_chance_and_reaches_the_target_when_the_curve_does():
    truth = model.truth(SIM, "opt", {"lr": 1e-3}, 10, target=0.7, target_metric="val_acc1")
    assert truth["val_acc1"] == pytest.approx(0.8)
    assert truth["test_acc1"] == pytest.approx(0.78)
    assert truth["diverge_probability"] == 0.0
    # first epoch with 0.1 + 0.7 x progress >= 0.7: progress >= 6/7
    first = next(e for e in range(1, 11) if model.progress(e, 10, 2.0) >= 6 / 7)
    assert truth["epochs_to_target"] == first
    assert truth["seconds_to_target"] == first * 3.0  # step_cost
    on_test = model.truth(SIM, "opt", {"lr": 1e-3}, 10, target=0.79, target_metric="test_acc1")
    assert on_test["epochs_to_target"] == math.inf  # test peaks at 0.78
    jittery = sim(diverge_sd=0.1)
    edge = model.truth(jittery, "opt", {"lr": 1e-1}, 10, target=0.7, target_metric="val_acc1")
    margin = model.final_margin(jittery, OPT, {"lr": 1e-1})
    assert edge["diverge_probability"] == pytest.approx(0.5)
    assert edge["val_acc1"] == pytest.approx(0.5 * (0.1 + margin) + 0.5 * 0.1)
    assert edge["test_acc1"] == pytest.approx(0.5 * (0.1 + margin - 0.02) + 0.5 * 0.1)
    assert edge["epochs_to_target"] == math.inf  # a setting that diverges half the time: never


def test_a_noise_free_run_is_its_curve_and_diverges_in_the_stated_epoch():
    exact = sim(val_size=10 ** 12, test_size=10 ** 12)
    rows, stop = model.run_rows(exact, "opt", {"lr": 1e-3}, seed=0, epochs=10, noise_key="k")
    assert stop is None and [r["epoch"] for r in rows] == list(range(1, 11))
    for row in rows:
        share = model.progress(row["epoch"], 10, 2.0)
        assert row["val_acc1"] == pytest.approx(0.1 + 0.7 * share, abs=1e-5)
        assert row["test_acc1"] == pytest.approx(0.1 + 0.7 * share - 0.02 * share, abs=1e-5)
        assert row["train_acc1"] == pytest.approx(0.1 + 0.75 * share)
        assert row["val_acc5"] == pytest.approx(model.top5(row["val_acc1"], exact))
        assert set(row) >= set(contract.LOGGED_COLUMNS) - {"epoch_seconds", "train_images_per_s"}
    rows, stop = model.run_rows(exact, "opt", {"lr": 10 ** -0.5}, seed=0, epochs=10,
                                noise_key="k")
    assert stop == 5 and len(rows) == 4  # 0.5 decades past the edge: epoch ceil(10 x 0.5)


def test_evaluation_noise_is_binomial_of_val_size_and_the_same_on_a_rerun():
    finals = np.array([model.run_rows(SIM, "opt", {"lr": 1e-3}, 0, 10, f"run{i}")[0][-1]["val_acc1"]
                       for i in range(2000)])
    sd = math.sqrt(0.8 * 0.2 / 5000)
    assert finals.mean() == pytest.approx(0.8, abs=4 * sd / math.sqrt(2000))
    assert finals.std(ddof=1) == pytest.approx(sd, rel=0.1)  # chi-square: sd of the sd ~1.6%
    again = model.run_rows(SIM, "opt", {"lr": 1e-3}, 0, 10, "run7")[0]
    assert again[-1]["val_acc1"] == finals[7]


def test_seed_effects_have_their_stated_sizes_and_the_shared_one_correlates_optimizers():
    noisy = sim(seed_shared_sd=0.006, seed_sd=0.008, val_size=10 ** 12, test_size=10 ** 12,
                optimizers={"a": SPEC, "b": SPEC})
    seeds = range(3000)
    a = np.array([model.seed_effects(noisy, "a", s)[0] for s in seeds])
    b = np.array([model.seed_effects(noisy, "b", s)[0] for s in seeds])
    assert a.std() == pytest.approx(math.hypot(0.006, 0.008), rel=0.06)
    # the shared effect's share of the variance: 0.006^2 / (0.006^2 + 0.008^2) = 0.36
    assert np.corrcoef(a, b)[0, 1] == pytest.approx(0.36, abs=0.06)
    # one run's validation and test numbers carry the same seed effect
    rows, _ = model.run_rows(noisy, "a", {"lr": 1e-3}, seed=11, epochs=10, noise_key="x")
    effect = model.seed_effects(noisy, "a", 11)[0]
    assert rows[-1]["val_acc1"] == pytest.approx(0.8 + effect, abs=1e-5)
    assert rows[-1]["test_acc1"] == pytest.approx(0.78 + effect, abs=1e-5)


# --- the config -----------------------------------------------------------------------------

def test_every_optimizer_option_has_a_simulated_model_and_passes_its_checks():
    options = sorted(p.stem for p in (Path(conf_dir()) / "optimizer").glob("*.yaml")
                     if OmegaConf.load(p)._target_.rsplit(".", 1)[-1] not in REFUSED)
    cfg = simulated()
    assert is_simulated(cfg) and cfg.data.name == "simulated"
    assert sorted(cfg.simulate.optimizers) == options
    for option in options:
        cfg = simulated(f"optimizer={option}")
        check(cfg, option)
        spec = model.OptimizerModel.of(OmegaConf.to_container(cfg.simulate), option)
        # the default setting of conf/optimizer/ is a sensible run, not past the edge
        assert model.overshoot(spec, OmegaConf.to_container(cfg.optimizer)) < 0, option


def test_bad_simulated_settings_are_refused_naming_the_key():
    cfg = simulated("optimizer=adam")
    with pytest.raises(ConfigError, match=r"simulate\.optimizers"):
        check(cfg, "nosuch")
    with pytest.raises(ConfigError, match=r"simulate\.crash_rate"):
        check(simulated("optimizer=adam", "simulate.crash_rate=1.5"), "adam")
    with pytest.raises(ConfigError, match=r"simulate\.optimizers\.adam\.peak"):
        check(simulated("optimizer=adam", "simulate.optimizers.adam.peak=0.05"), "adam")
    with pytest.raises(ConfigError, match=r"scheduler"):
        check(simulated("optimizer=adam", "scheduler=cosine"), "adam")


# --- the task -------------------------------------------------------------------------------

def read_metrics(run_dir: Path) -> list[dict]:
    with open(run_dir / contract.METRICS_FILE, newline="") as f:
        return list(csv.DictReader(f))


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / contract.SUMMARY_FILE).read_text())


def test_a_simulated_run_writes_the_run_directory_training_writes(tmp_path):
    cfg = simulated("optimizer=lion", "trainer.epochs=4")
    outcome = run_task(cfg, tmp_path, choices={"optimizer": "lion"})
    assert outcome.status == Status.COMPLETED and outcome.epochs_completed == 4
    rows = read_metrics(tmp_path)
    assert list(rows[0]) == list(contract.METRIC_COLUMNS) and len(rows) == 4
    done = summary(tmp_path)
    assert done["status"] == "completed" and done[contract.SIMULATED_FIELD] is True
    assert done["device"] == contract.SIMULATED_DEVICE
    assert done[contract.CLASSES_FIELD] == cfg.simulate.classes == 10  # a diverged run's chance
    sim = OmegaConf.to_container(cfg.simulate)
    expected = model.truth(sim, "lion", OmegaConf.to_container(cfg.optimizer), 4,
                           float(cfg.workload.target), cfg.workload.target_metric)
    assert done[contract.TRUTH_FIELD]["test_acc1"] == pytest.approx(expected["test_acc1"])
    assert float(rows[-1]["val_acc1"]) == pytest.approx(done["objective"])
    # step_cost stands for the seconds of an epoch when nothing is slept
    assert float(rows[0]["epoch_seconds"]) == sim["optimizers"]["lion"]["step_cost"]
    # a rerun of the finished run is not run again
    mtime = (tmp_path / contract.SUMMARY_FILE).stat().st_mtime_ns
    assert run_task(cfg, tmp_path, choices={"optimizer": "lion"}).status == Status.COMPLETED
    assert (tmp_path / contract.SUMMARY_FILE).stat().st_mtime_ns == mtime


def test_a_run_past_the_edge_diverges_with_the_epochs_before_it(tmp_path):
    cfg = simulated("optimizer=sgd", "optimizer.lr=3.0", "trainer.epochs=10",
                    "simulate.diverge_sd=0")
    outcome = simulate(cfg, tmp_path, choices={"optimizer": "sgd"})
    spec = model.OptimizerModel.of(OmegaConf.to_container(cfg.simulate), "sgd")
    epoch = model.divergence_epoch(model.overshoot(spec, OmegaConf.to_container(cfg.optimizer)),
                                   10)
    assert outcome.status == Status.DIVERGED and epoch is not None
    assert len(read_metrics(tmp_path)) == epoch - 1
    assert "not finite" in summary(tmp_path)["error"]


def test_a_crash_is_drawn_per_attempt_and_a_rerun_can_finish(tmp_path):
    with pytest.raises(SimulatedCrash, match="crash_rate"):
        simulate(simulated("optimizer=adam", "simulate.crash_rate=1"), tmp_path,
                 choices={"optimizer": "adam"})
    assert summary(tmp_path)["status"] == "failed"
    outcome = simulate(simulated("optimizer=adam"), tmp_path, choices={"optimizer": "adam"})
    assert outcome.status == Status.COMPLETED


def test_the_epoch_hook_prunes_and_epoch_seconds_scale_with_step_cost(tmp_path):
    seen = []

    def prune_after_two(epoch: int, row: dict) -> None:
        seen.append(row["val_acc1"])
        if epoch == 2:
            raise StopRun(Status.PRUNED, "pruned at epoch 2")

    cfg = simulated("optimizer=lbfgs", "simulate.epoch_seconds=0.001")
    outcome = simulate(cfg, tmp_path, on_epoch=prune_after_two, choices={"optimizer": "lbfgs"})
    assert outcome.status == Status.PRUNED and len(seen) == 2
    rows = read_metrics(tmp_path)
    cost = cfg.simulate.optimizers.lbfgs.step_cost
    assert [float(r["epoch_seconds"]) for r in rows] == pytest.approx([0.001 * cost] * 2)


def test_a_run_without_an_optimizer_choice_is_refused_before_it_starts(tmp_path):
    with pytest.raises(ConfigError, match="optimizer"):
        simulate(simulated(), tmp_path, choices={})
    assert summary(tmp_path)["status"] == "failed"


# --- without torch, through the command lines ------------------------------------------------

@pytest.fixture(scope="module")
def no_torch(tmp_path_factory) -> dict:
    """An environment where ``import torch`` raises, as on a machine without it."""
    stub = tmp_path_factory.mktemp("notorch") / "torch"
    stub.mkdir()
    (stub / "__init__.py").write_text('raise ImportError("torch is blocked in this test")\n')
    return {"PYTHONPATH": f"{processes.ROOT}:{stub.parent}", "MPLBACKEND": "Agg"}


def test_a_run_and_a_tuning_sweep_need_no_torch(tmp_path, no_torch):
    run = processes.optsweep("workload=simulated", "optimizer=lion",
                             f"hydra.run.dir={tmp_path}/one", env=no_torch, check=True)
    assert summary(tmp_path / "one")["status"] == "completed", run.stderr[-2000:]
    processes.optsweep("-m", "sweep=tune", "workload=simulated", "optimizer=sgd", "space=sgd",
                       "hydra.sweeper.n_trials=6", f"hydra.sweep.dir={tmp_path}/tune",
                       env=no_torch, check=True)
    statuses = [summary(job)["status"] for job in (tmp_path / "tune").iterdir()
                if (job / contract.SUMMARY_FILE).exists()]
    assert len(statuses) == 6 and set(statuses) <= {str(s) for s in contract.FINAL}
    assert_trial_0_ran_the_defaults_and_none_is_better(tmp_path / "tune", "sgd")


def assert_trial_0_ran_the_defaults_and_none_is_better(study: Path, optimizer: str) -> None:
    """Trial 0 of ``study`` (tuned in conf/space/<optimizer>.yaml) ran every searched key at its
    conf/optimizer/<optimizer>.yaml value, and the study's best (val_acc1, maximised) is no
    lower."""
    defaults = OmegaConf.load(Path(conf_dir()) / "optimizer" / f"{optimizer}.yaml")
    searched = OmegaConf.load(Path(conf_dir()) / "space" / f"{optimizer}.yaml")
    first = OmegaConf.load(study / "0" / ".hydra" / "config.yaml")
    assert {key: OmegaConf.select(first, key) for key in searched} == \
        {key: defaults[key.split(".", 1)[1]] for key in searched}
    values = [summary(job)["objective"] for job in study.iterdir() if job.name.isdigit()
              and summary(job)["status"] in {str(s) for s in contract.FINAL}]
    results = OmegaConf.load(study / contract.OPTIMIZATION_RESULTS_FILE)
    assert results.defaults.trial == 0 and results.defaults.left_out == {}
    assert results.best_value == max(values) >= summary(study / "0")["objective"]


@pytest.mark.slow
def test_the_benchmark_without_torch_names_the_optimizer_whose_truth_is_best(tmp_path, no_torch):
    # lion's peak 0.1 above the others: many seed SDs (about 0.007 each) above the second
    out = tmp_path / "bench"
    processes.module("optsweep.benchmark", "workloads=[simulated]",
                     "optimizers=[adam,sgd,lion]", "budget=8", "seeds=3",
                     "simulate.optimizers.lion.peak=0.9", f"dir={out}", env=no_torch, check=True)
    with open(out / "report" / "benchmark_results.csv", newline="") as f:
        results = {row["optimizer"]: row for row in csv.DictReader(f)}
    best = max(results, key=lambda o: float(results[o]["truth"]))
    assert best == "lion" and results["lion"]["verdict"] == "best"
    # the report's first section and the settings table's first line say the numbers are invented
    report = (out / "report" / "report.md").read_text().split("\n## ")
    assert report[1].startswith("Simulated runs") and contract.SIMULATED_NOTE in report[1]
    # the power statement: its detectable difference follows from its own spread, seeds and alpha
    (power,) = [line for line in "\n".join(report).splitlines() if "Power on simulated" in line]
    sd = float(power.split("spread over seeds is ")[1].split(" ")[0])
    detectable = float(power.split("a true difference of ")[1].split(" ")[0])
    assert "alpha 0.05/2" in power and "3 seeds each" in power
    # both printed to 4 decimals: the rounding of sd moves the detectable difference by ~1%
    assert detectable == pytest.approx(stats.detectable_difference(sd, None, 3, 0.025), rel=0.02)
    assert detectable > sd  # 3 seeds cannot find a difference of one seed sd
    settings = (out / "report" / "settings.md").read_text()
    assert settings.splitlines()[0] == contract.SIMULATED_NOTE
    # every study's trial 0 ran its optimizer's defaults, and the report says so
    for optimizer in ("adam", "sgd", "lion"):
        assert_trial_0_ran_the_defaults_and_none_is_better(out / "simulated" / optimizer, optimizer)
    assert "Every study's trial 0 ran its optimizer's defaults" in "\n".join(report)
