"""The overview: each sweep's best setting against the optimizer's default, and the comparison."""
import json
import math

import pytest
from conftest import write_run
from scipy import stats as scipy_stats
from test_figures import assert_on_canvas

from optsweep.analysis import load_runs
from optsweep.analysis.overview import (
    default_setting,
    display_overview,
    optimizer_defaults,
    overview_figure,
    overview_table,
)
from optsweep.analysis.report import write_report
from optsweep.analysis.tables import setting_table


@pytest.fixture
def study(tmp_path, optimizer_sweep):
    """compare (adam vs sgd) plus adam_wd: weight_decay 0 (Adam's default) at test_acc1 0.90,
    0.91, 0.92 and 1e-4 at 0.95, 0.96, 0.97 (seeds 0-2; val_acc1 is 0.01 higher)."""
    sweep, num = optimizer_sweep.parent / "adam_wd", 0
    for wd, base in ((0.0, 0.90), (1e-4, 0.95)):
        for seed in range(3):
            write_run(sweep / str(num), wd=wd, seed=seed, num=num, acc=round(base + 0.01 * seed, 6))
            num += 1
    return load_runs([optimizer_sweep.parent])


def overview_of(runset):
    table = setting_table(runset, "test_acc1", "val_acc1")
    return overview_table(runset, table, "test_acc1", "val_acc1")


def test_the_default_is_read_from_the_optimizers_config_file():
    assert optimizer_defaults("adam")["lr"] == pytest.approx(1e-3)
    assert optimizer_defaults("no_such_optimizer") == {}


def searchpath_sweep(tmp_path):
    """multirun/my_lr: a user's ``mysgd`` (lr 1e-2 in their own conf folder, sgd's file says 1e-3)
    at lr 1e-3, 1e-2, 1e-1, seeds 0-1, run from tmp_path with ``hydra.searchpath=[file://myconf]``
    (relative: Hydra read it from the run's working directory, not the analysis's)."""
    (tmp_path / "myconf" / "optimizer").mkdir(parents=True)
    (tmp_path / "myconf" / "optimizer" / "mysgd.yaml").write_text(
        "_target_: torch.optim.SGD\n_partial_: true\nlr: 1.0e-2\nmomentum: 0.0\n")
    sweep, num = tmp_path / "multirun" / "my_lr", 0
    for lr in (1e-3, 1e-2, 1e-1):
        for seed in range(2):
            run = write_run(sweep / str(num), optimizer="sgd", lr=lr, seed=seed, num=num)
            hydra = run / ".hydra" / "hydra.yaml"
            hydra.write_text(hydra.read_text().replace("optimizer: sgd", "optimizer: mysgd")
                             .replace("cwd: /work/main", f"cwd: {tmp_path}")
                             .replace("    choices:", MYCONF_SOURCES + "    choices:"))
            summary = json.loads((run / "summary.json").read_text())
            (run / "summary.json").write_text(json.dumps(summary | {"choices": {
                "optimizer": "mysgd"}}))  # as training records the group choices
            num += 1
    return sweep


MYCONF_SOURCES = """\
    config_sources:
    - {path: hydra.conf, schema: pkg, provider: hydra}
    - {path: /elsewhere/conf, schema: file, provider: main}
    - {path: myconf, schema: file, provider: hydra.searchpath in command-line}
    - {path: '', schema: structured, provider: schema}
"""


def test_an_optimizer_from_the_runs_searchpath_gets_its_default(tmp_path, monkeypatch):
    sweep = searchpath_sweep(tmp_path)
    monkeypatch.chdir(sweep)  # the analysis runs elsewhere than the runs did
    runset = load_runs([sweep])
    assert set(runset.runs["optimizer"]) == {"mysgd"}
    assert optimizer_defaults("mysgd") == {}  # not in optsweep's own tree
    assert optimizer_defaults("mysgd", (f"file://{tmp_path}/myconf",))["lr"] == 1e-2
    assert default_setting(runset.runs, runset.swept["my_lr"], "mysgd") == "lr=0.01"
    # lr 1e-2 (0.80, 0.81) against lr 1e-3 (0.90, 0.91): its default is compared, not missing
    row = overview_of(runset).set_index("sweep").loc["my_lr"]
    assert (row["best"], row["reference"]) == ("lr=0.001", "lr=0.01")
    assert row["difference"] == pytest.approx(-0.10)


def test_best_setting_against_the_default_with_welchs_verdict(study):
    row = overview_of(study).set_index("sweep").loc["adam_wd"]
    assert default_setting(study.runs[study.runs["sweep"] == "adam_wd"],
                           study.swept["adam_wd"], "adam") == "weight_decay=0"
    assert (row["best"], row["reference"]) == ("weight_decay=0.0001", "weight_decay=0")
    assert row["best_mean"] == pytest.approx(0.96) and row["reference_mean"] == pytest.approx(0.91)
    # equal sd 0.01, n=3 each: t = 0.05 / sqrt(2 * 0.01**2 / 3), Welch dof 4
    t = 0.05 / math.sqrt(2 * 0.01 ** 2 / 3)
    assert row["p_value"] == pytest.approx(2 * scipy_stats.t.sf(t, 4), rel=1e-3)
    assert row["verdict"].startswith("worse beyond noise")  # the default, against the best
    assert row["difference"] == pytest.approx(-0.05)


def test_optimizer_comparison_rows_and_a_missing_default(study, lr_sweep):
    rows = overview_of(study)
    compare = rows[rows["sweep"] == "compare"]
    assert list(zip(compare["best"], compare["reference"])) == [("adam", "sgd")]
    assert compare["difference"].iloc[0] == pytest.approx(0.805 - 0.905)  # means of x.x0, x.x1
    # adam_lr sweeps 1e-4, 1e-3, 1e-2: 1e-3 is Adam's default and the best
    lr = overview_of(load_runs([lr_sweep]))
    assert lr["verdict"].tolist() == ["the default is best"]
    shown = display_overview(rows, "test_acc1", "val_acc1")
    assert shown.columns[2] == "best (chosen on val_acc1)"


def test_overview_figure_draws_the_means_and_fits_its_canvas(study):
    rows = overview_of(study)
    fig = overview_figure(rows, "test_acc1", "val_acc1")
    compare, sweeps = fig.axes[0], fig.axes[1]
    drawn = sorted(float(line.get_ydata()[0]) for line in compare.lines
                   if line.get_marker() == "o")  # the means; error-bar caps are other markers
    assert drawn == pytest.approx([0.805, 0.905])
    drawn_x = sorted(float(line.get_xdata()[0]) for line in sweeps.lines
                     if line.get_marker() == "o")
    assert drawn_x == pytest.approx([0.91, 0.96])
    labels = [t.get_text() for t in sweeps.get_yticklabels()]
    assert labels == ["adam_wd (adam): weight_decay=0.0001"]
    assert_on_canvas(fig)


def test_report_opens_with_the_overview(study, tmp_path):
    report = write_report(study, tmp_path / "out", metric="test_acc1", select="val_acc1")
    markdown = (tmp_path / "out" / "report.md").read_text()
    first_sweep = markdown.index("\n## compare\n")
    assert markdown.index("![overview](figures/overview.png)") < first_sweep
    assert markdown.index("| adam_wd | digits | weight_decay=0.0001 |") < first_sweep
    assert report.read_text().index('alt="overview"') < report.read_text().index("<h2>compare</h2>")
    assert (tmp_path / "out" / "overview.csv").stat().st_size > 0
