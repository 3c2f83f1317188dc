"""The README's commands work as written: each training command composes and validates, the offline
study runs (tiny), and the analysis commands run on fabricated sweeps."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from optsweep.conf_tree import conf_dir
from optsweep.simulate import task as simulate
from optsweep.task import is_simulated
from optsweep.train import check_config
from tests.conftest import QUICK
from tests.processes import module

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def readme_commands(prefix: str) -> list[list[str]]:
    """Every command in the README's bash blocks that starts with ``prefix`` (comments dropped)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith(prefix + " ") or line == prefix:
                commands.append(shlex.split(line)[len(prefix.split()):])
    return commands


def first_of_each_sweep(arguments: list[str]) -> list[str]:
    """One job's overrides: the first value of every swept key (``a,b,c`` -> ``a``)."""
    overrides = [a for a in arguments if a != "-m"]
    parsed = OverridesParser.create().parse_overrides(overrides)
    single = []
    for override, text in zip(parsed, overrides):
        if override.is_sweep_override():
            value = next(iter(override.sweep_iterator()))
            single.append(f"{override.get_key_element()}={value}")
        else:
            single.append(text)
    return single


TRAINING = readme_commands("python -m optsweep")


def test_the_readme_shows_the_design_cards_commands():
    assert ["-m", "optimizer=adam", "optimizer.weight_decay=0,1e-4,1e-3"] in TRAINING
    assert any("sweep=lr_search" in c for c in TRAINING)
    assert readme_commands("python -m optsweep.analysis")[0][0].startswith("multirun/")


@pytest.mark.parametrize("arguments", TRAINING, ids=" ".join)
def test_each_training_command_composes_and_validates(arguments):
    with initialize_config_dir(version_base="1.3", config_dir=conf_dir()):
        cfg = compose(config_name="config", overrides=first_of_each_sweep(arguments),
                      return_hydra_config=True)
    if is_simulated(cfg):  # the simulated task's own checks (training refuses data=simulated)
        simulate.check(cfg, cfg.hydra.runtime.choices.optimizer)
    else:
        check_config(cfg)


@pytest.mark.slow
def test_the_offline_study_command_runs(tmp_path):
    (arguments,) = [c for c in readme_commands("python -m optsweep.study") if "data=digits" in c]
    tiny = [a for a in QUICK if not a.startswith(("data=", "model.weights", "trainer.epochs"))]
    dry = module("optsweep.study", "--dry-run", *arguments, cwd=tmp_path)
    assert dry.returncode == 0 and dry.stdout.count("sweep=") == 9  # the nine grids
    real = module("optsweep.study", "--presets", "optimizers,rmsprop_centered", *arguments,
                  *tiny, cwd=tmp_path)
    assert real.returncode == 0, real.stderr[-2000:]
    assert (tmp_path / "analysis" / "multirun" / "report.html").is_file()
    assert len(list((tmp_path / "multirun" / "optimizers").glob("*/summary.json"))) == 3


RESULTS = (ROOT / "benchmarks" / "RESULTS.md").read_text()


def markdown_table(text: str, header: str) -> list[dict]:
    """The rows of the table whose header line starts with ``header``, as {column: cell}."""
    lines = text[text.index(header):].split("\n\n", 1)[0].splitlines()
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    return [dict(zip(cells[0], row, strict=True)) for row in cells[2:]]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


RESULT_ROWS = markdown_table(RESULTS, "| benchmark | command |")


def test_the_readmes_speed_table_quotes_results_md_with_the_machine_of_each_number():
    speed = markdown_table(README, "| benchmark | machine |")
    by_command = {row["command"]: row for row in RESULT_ROWS}
    assert len(speed) >= 6
    for row in speed:
        result = by_command[row["benchmark"]]
        quoted = next(cell for column, cell in row.items() if column.startswith("latest result"))
        assert (row["machine"], quoted) == (result["machine"], result["latest result"]), \
            row["benchmark"]


def test_results_md_opens_with_the_table_and_each_row_has_its_section_in_one_shape():
    assert RESULTS.index("| benchmark | command |") < RESULTS.index("\n## ")
    machines = re.findall(r"^- \*\*(.+?)\*\*: ", RESULTS[:RESULTS.index("| benchmark |")], re.M)
    assert len(machines) == 3  # the Xeon with AVX-512, AMD EPYCs without it and with it
    sections = {slug(h): body for h, body in
                re.findall(r"^## (.+?)\n(.*?)(?=^## |\Z)", RESULTS, flags=re.S | re.M)}
    for row in RESULT_ROWS:
        assert row["machine"] in {*machines, "machine not recorded", "none"}, row["benchmark"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d|not yet measured", row["date"]), row["benchmark"]
        name, anchor = re.fullmatch(r"\[(.+)\]\(#(.+)\)", row["benchmark"]).groups()
        body = sections[anchor]
        bullets = re.findall(r"^- \*\*(\w[\w ]*):\*\* (.*)$", body, re.M)
        assert [b for b, _ in bullets] == ["Command", "Machine", "Date",
                                           "Result against target"], name
        machine, date = bullets[1][1], bullets[2][1]
        assert machine.startswith(row["machine"]) or row["machine"] == "none", name
        assert date.startswith(row["date"]) or row["date"] == "not yet measured", name
    assert "how-to-add-a-section" in sections
