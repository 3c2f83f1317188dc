"""The CLI (in-process through main(argv), and once as a subprocess) and the report it writes."""

import pytest
from conftest import write_run

from optsweep.analysis.__main__ import main
from tests import processes


def test_missing_path_exits_2_naming_it(tmp_path, capsys):
    missing = tmp_path / "no_such_sweep"
    assert main([str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0] and "no such file" in err[0]


def test_path_without_runs_exits_2(tmp_path, capsys):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert main([str(tmp_path / "empty")]) == 2
    assert "holds no run directory" in capsys.readouterr().err


def test_unknown_metric_exits_2(lr_sweep, tmp_path, capsys):
    assert main([str(lr_sweep), "--metric", "test_acc7", "--out", str(tmp_path / "o")]) == 2
    assert "--metric test_acc7" in capsys.readouterr().err


def test_report_with_skipped_runs(messy_sweep, tmp_path, capsys):
    out = tmp_path / "report"
    assert main([str(messy_sweep), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "lr=0.001" in printed and f"report: {out / 'report.html'}" in printed
    html = (out / "report.html").read_text()
    # the overview, then the sweep's curves and final values
    assert html.count("data:image/png;base64,") == 3 and 'src="figures/' not in html
    markdown = (out / "report.md").read_text()
    assert "Best on digits (by val_acc1 0.9200): **lr=0.001**" in markdown
    assert "lr=0.0001: 0.3000 lower than lr=0.001, worse beyond noise" in markdown
    skipped = markdown.split("## Skipped run directories")[1]
    for job in ("11", "12", "13"):
        assert str(messy_sweep / job) in skipped
    for name in ("settings.csv", "settings.md", "best.csv", "significance.csv", "runs.csv"):
        assert (out / name).stat().st_size > 0


def test_default_out_dir_and_study_order(tmp_path, monkeypatch, capsys):
    multirun = tmp_path / "multirun"
    for num, lr in enumerate((1e-3, 1e-2)):
        write_run(multirun / "adam_lr" / str(num), lr=lr, num=num)
    for num, wd in enumerate((0.0, 0.01)):
        write_run(multirun / "adam_wd" / str(num), wd=wd, num=num)
    for num, optimizer in enumerate(("adam", "sgd")):
        write_run(multirun / "compare" / str(num), optimizer=optimizer, num=num)
    monkeypatch.chdir(tmp_path)
    assert main(["multirun"]) == 0
    report = tmp_path / "analysis" / "multirun" / "report.md"  # named after the folder analysed
    text = report.read_text()
    positions = [text.index(f"\n## {name}\n") for name in ("compare", "adam_wd", "adam_lr")]
    assert positions == sorted(positions)  # comparison, attribute sweep, lr sweep
    assert main(["multirun/adam_lr", "multirun/adam_wd"]) == 0  # several folders: joined names
    assert (tmp_path / "analysis" / "adam_lr+adam_wd" / "report.html").is_file()


@pytest.mark.slow
def test_cli_as_a_subprocess(lr_sweep, tmp_path):
    def analysis(*args: str):
        return processes.module("optsweep.analysis", *args, env={"MPLBACKEND": "Agg"})

    helped = analysis("--help")
    assert helped.returncode == 0 and "--metric" in helped.stdout
    bad = analysis(str(tmp_path / "nope"))
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and str(tmp_path / "nope") in bad.stderr
    good = analysis(str(lr_sweep), "--out", str(tmp_path / "r"))
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "r" / "report.html").is_file()
