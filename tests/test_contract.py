"""The run-directory contract: one rule for the best epoch everywhere, one home for every fact."""

from __future__ import annotations

import ast
import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

from optsweep import contract
from optsweep.contract import METRIC_COLUMNS, Status
from optsweep.rundir import RunDir
from tests import processes

ROOT = Path(__file__).resolve().parents[1]


def write_hand_run(run_dir: Path, objective: str, column: str, values: list[float]) -> dict:
    """A run directory written by hand: three epochs whose ``column`` takes ``values``."""
    (run_dir / ".hydra").mkdir(parents=True)
    config = {"model": {"name": "resnet18"}, "data": {"name": "digits", "val_fraction": 0.1},
              "optimizer": {"_target_": "torch.optim.Adam", "lr": 0.001},
              "trainer": {"objective": objective, "seed": 0}}
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (run_dir / ".hydra" / "overrides.yaml").write_text("[]\n")
    rows = []
    for epoch, value in enumerate(values, start=1):
        row = {c: 0.5 for c in METRIC_COLUMNS}
        row.update(epoch=epoch, **{column: value})
        rows.append(row)
    RunDir(run_dir).write_metrics(rows)
    content = contract.summary(Status.COMPLETED, objective, rows,
                               choices={"optimizer": "adam", "data": "digits", "model": "resnet18"})
    RunDir(run_dir).write_summary(content)
    return json.loads((run_dir / contract.SUMMARY_FILE).read_text())


@pytest.mark.parametrize("objective, column, values, best", [
    ("val_loss", "val_loss", [3.0, 1.0, 2.0], 2),  # a loss: the lowest
    ("val_acc1", "val_acc1", [0.2, 0.6, 0.6], 2),  # an accuracy: the highest, first reached
    ("test_loss", "val_loss", [3.0, 2.0, 1.0], 3),  # chosen on validation, never on test
])
def test_best_epoch_is_the_same_in_the_summary_the_loaded_runs_and_the_report(
        tmp_path, objective, column, values, best):
    from optsweep.analysis import load_runs
    from optsweep.analysis.tables import setting_table

    summary = write_hand_run(tmp_path / "sweep" / "0", objective, column, values)
    assert summary["best"]["epoch"] == best
    runs = load_runs([tmp_path / "sweep"]).runs
    assert runs.loc[0, "best_epoch"] == best
    assert runs.loc[0, f"best_{column}"] == values[best - 1]
    table = setting_table(load_runs([tmp_path / "sweep"]))
    assert table["best_val_epoch"].tolist() == [best]


def test_direction_worst_value_and_objective_of_each_end():
    assert contract.direction("val_acc1") == "maximize"
    assert contract.direction("val_loss") == "minimize"
    assert contract.worst_value("test_acc5") == 0.0 and contract.worst_value("val_loss") == 1e9
    rows = [{"epoch": 1, "val_loss": 2.0}, {"epoch": 2, "val_loss": 1.5}]
    assert contract.objective_value(Status.COMPLETED, rows, "val_loss") == 1.5
    assert contract.objective_value(Status.PRUNED, rows, "val_loss") == 1.5
    assert contract.objective_value(Status.DIVERGED, rows, "val_loss") == 1e9
    assert contract.objective_value(Status.FAILED, [], "val_acc1") == 0.0
    assert contract.best_row([{"epoch": 1, "val_acc1": None}], "test_acc1") is None


def test_a_diverged_run_counts_at_chance_accuracy_and_the_uniform_predictions_loss():
    assert contract.chance_value("val_acc1", 100) == 0.01
    assert contract.chance_value("test_acc5", 100) == 0.05
    assert contract.chance_value("val_acc5", 3) == 1.0  # top-5 of 3 classes: always right
    assert contract.chance_value("train_loss", 10) == pytest.approx(2.302585093)  # ln(10)
    assert contract.chance_value("lr", 10) is None  # neither an accuracy nor a loss
    assert contract.chance_value("val_acc1", None) is None
    assert contract.chance_value("val_acc1", float("nan")) is None


def test_summary_without_a_file_is_unfinished_and_failed_summary_is_complete(tmp_path):
    assert contract.status_of(RunDir(tmp_path).summary()) == Status.UNFINISHED
    cfg = {"trainer": {"objective": "val_loss"}, "data": {"val_fraction": 0.1}}
    outcome = RunDir(tmp_path).write_failed_summary("ValueError: boom", cfg,
                                                    choices={"data": "digits"})
    written = RunDir(tmp_path).summary()
    assert outcome == contract.Outcome(Status.FAILED, 1e9, "val_loss", 0, "ValueError: boom")
    assert written["status"] == "failed" and written["choices"] == {"data": "digits"}
    assert set(written["versions"]) == {"python", "torch", "torchvision", "optsweep"}


def test_metrics_file_has_the_contract_columns_and_empty_cells_for_missing(tmp_path):
    RunDir(tmp_path).write_metrics([{"epoch": 1, "train_loss": 2.5}])
    with open(tmp_path / contract.METRICS_FILE, newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert tuple(row) == METRIC_COLUMNS and row["train_loss"] == "2.5" and row["val_acc1"] == ""


def test_contract_imports_without_torch():
    probe = ("import sys; sys.modules['torch'] = None; import optsweep.contract as c; "
             "import optsweep.rundir, optsweep.analysis.load; print(c.Status.COMPLETED)")
    result = processes.code(probe, check=True)
    assert result.stdout.strip() == "completed"


def test_the_config_imports_composes_and_validates_without_torch():
    probe = ("import sys; sys.modules['torch'] = None\n"
             "from hydra import compose, initialize_config_dir\n"
             "from optsweep.conf_tree import conf_dir\n"
             "from optsweep.config import register_configs, validate\n"
             "register_configs()\n"
             "with initialize_config_dir(version_base='1.3', config_dir=conf_dir()):\n"
             "    cfg = compose('config', overrides=['sweep=lr_search', 'optimizer=rmsprop'])\n"
             "validate(cfg)\n"
             "print(cfg.optimizer._target_, sorted(m for m in sys.modules if m.startswith('torch')"
             " and sys.modules[m] is not None))")
    result = processes.code(probe, check=True)
    assert result.stdout.strip() == "torch.optim.RMSprop []"


# --- one home per fact ----------------------------------------------------------------------------

STATUS_VALUES = {status.value for status in Status}
COLUMN_NAMES = set(METRIC_COLUMNS)
# Every file of a run or sweep directory the contract names: written elsewhere as a literal, it
# would be a second home of the name (f"{contract.HYDRA_DIR}/config.yaml" included).
FILE_NAMES = {value for name, value in vars(contract).items()
              if name.endswith("_FILE") or name == "HYDRA_DIR"} | set(contract.SWEEP_SUMMARY_FILES)
# Names that hold an objective: a default there would be a hidden objective (a failed run's
# summary recording val_acc1 for a val_loss run); contract.recorded_objective decides instead.
OBJECTIVE_HOLDERS = {"name", "objective", "objective_name"}


def _source_files() -> list[Path]:
    files = [*(ROOT / "optsweep").rglob("*.py"), *(ROOT / "hydra_plugins").rglob("*.py")]
    return [f for f in files if f.name != "contract.py"]


def _violations(path: Path, root: Path = ROOT) -> list[str]:
    where = path.relative_to(root)
    tree = ast.parse(path.read_text(), filename=str(path))
    # a key of a dict or a subscript names a field ("pruned": Optuna's pruned trials), not a status
    keys = {id(k) for node in ast.walk(tree) if isinstance(node, ast.Dict) for k in node.keys}
    keys |= {id(node.slice) for node in ast.walk(tree) if isinstance(node, ast.Subscript)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value in STATUS_VALUES and id(node) not in keys:
            found.append(f"{where}:{node.lineno}: status {node.value!r}")
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            names = [e.value for e in node.elts if isinstance(e, ast.Constant)
                     and isinstance(e.value, str) and e.value in COLUMN_NAMES]
            if len(names) >= 3:
                found.append(f"{where}:{node.lineno}: metric columns {names}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and any(
                node.value == f or node.value.endswith("/" + f) for f in FILE_NAMES):
            found.append(f"{where}:{node.lineno}: file name {node.value!r}")
    return found + _objective_defaults(tree, where)


def _objective_defaults(tree: ast.AST, where: Path) -> list[str]:
    """An objective name given as a default to a parameter or variable that holds the objective."""
    pairs = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            pairs += zip(positional[len(positional) - len(args.defaults):], args.defaults)
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
        if isinstance(node, ast.Assign):
            pairs += [(t, node.value) for t in node.targets if isinstance(t, ast.Name)]
    return [f"{where}:{value.lineno}: objective default {value.value!r}" for target, value in pairs
            if getattr(target, "arg", getattr(target, "id", None)) in OBJECTIVE_HOLDERS
            and isinstance(value, ast.Constant) and value.value in contract.OBJECTIVES]


# The sweeper's two literals, to become contract.OPTUNA_DB_FILE and OPTIMIZATION_RESULTS_FILE when
# the sweeper's modules are next rewritten; nothing may join this list.
def test_no_status_string_or_metric_column_list_outside_the_contract():
    found = [v for path in _source_files() for v in _violations(path)]
    assert not found, "import these from optsweep.contract instead:\n" + "\n".join(found)


def test_the_scan_catches_a_literal_left_beside_a_reexport(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("from optsweep.contract import FINAL\n"
                       "FINAL_STATUSES = ('completed', 'diverged')\n"
                       "COLUMNS = ['train_loss', 'val_acc1', 'test_acc1']\n")
    assert len(_violations(planted, root=tmp_path)) == 3


def test_the_scan_catches_a_file_name_and_an_objective_default(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("from optsweep.contract import HYDRA_DIR\n"
                       "PATH = f'{HYDRA_DIR}/overrides.yaml'\n"
                       "STORE = 'optuna.db'\n"
                       "def fail(error, name='val_acc1'):\n"
                       "    objective = 'test_loss'\n"
                       "MESSAGE = 'no summary.json: the run recorded nothing'\n")
    found = _violations(planted, root=tmp_path)
    assert sorted(line.split(": ", 1)[1] for line in found) == [
        "file name '/overrides.yaml'", "file name 'optuna.db'", "objective default 'test_loss'",
        "objective default 'val_acc1'"]


def test_no_import_cycle_among_the_project_modules(tmp_path):
    tool = ROOT.parent / "shared" / "tools" / "import_cycles.py"
    if not tool.is_file():
        pytest.skip(f"{tool} is not beside this checkout")
    # the project's packages only: a checkout also holds virtual environments (.venv-optuna49)
    # whose third-party files are not the project's modules
    for package in ("optsweep", "hydra_plugins"):
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    result = processes.python(str(tool), str(tmp_path), check=True)
    assert " 0 import cycle" in f" {result.stdout}", result.stdout


# --- early stopping -------------------------------------------------------------------------------


@pytest.mark.parametrize("name, values, patience, stops_after", [
    ("val_acc1", [.2, .5, .4, .5, .3], 2, 4),  # 0.5 again is no improvement: epochs 3, 4
    ("val_acc1", [.2, .5, .4, .6, .3, .3], 2, 6),  # epoch 4 improved: counting starts again
    ("val_loss", [2., 1., 0.9, 1.5, 1.], 1, 4),  # a loss must fall
    ("test_acc1", [.2, .1, .1], 1, 2),  # watched on validation (val_acc1), never on test
    ("val_acc1", [.2, .3, .4, .5], 1, None),  # always improving
    ("val_acc1", [.2, .1, .1, .1], None, None),  # off
])
def test_early_stopping_stops_at_the_first_epoch_that_ends_patience_epochs_without_improvement(
        name, values, patience, stops_after):
    column = contract.best_epoch_metric(name)
    rows, stopped = [], None
    for epoch, value in enumerate(values, start=1):
        rows.append({"epoch": epoch, column: value})
        if contract.stops_early(rows, name, patience):
            stopped = epoch
            break
    assert stopped == stops_after


def test_an_early_stopped_run_is_final_averaged_and_returns_its_last_epoch():
    assert Status.EARLY_STOPPED in contract.FINAL and Status.EARLY_STOPPED in contract.AVERAGED
    assert Status.EARLY_STOPPED not in contract.RESUMABLE
    rows = [{"epoch": 1, "val_acc1": .5}, {"epoch": 2, "val_acc1": .4}]
    assert contract.objective_value(Status.EARLY_STOPPED, rows, "val_acc1") == .4
