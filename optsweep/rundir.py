"""``RunDir``, ``SweepDir`` and ``BenchmarkDir``: the one reader and writer of a run directory, of a
sweep's folder and the layout of a benchmark's; ``RunDirGuard``, the Hydra callback that checks a
single run's directory before Hydra writes into it.

``optsweep.contract`` says what the files are (names, columns, statuses, the objective); this
module is the only code that opens them. Training, sweep jobs and callbacks write through it; the
analysis, ``confirm``, ``export`` and the trackers read through it, so a file is named, parsed and
flattened one way everywhere. Torch-free, like the contract.

Two ways to read: ``read_*`` raise ``UnreadableFile`` naming the file and what is wrong with it
(the analysis lists the run as skipped with that reason); the plain accessors (``config()``,
``summary()``, ...) return None, [] or {} for a missing or unreadable file (a run still running, or
killed, leaves files half there).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from optsweep import contract
from optsweep.contract import Outcome, Status
from optsweep.errors import unwritable

_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: thousands of runs
# the providers of a run's config sources that every composition has (Hydra's own config, the
# app's primary folder, the ConfigStore): not the run's own choice of folders
HYDRA_OWN_SOURCES = ("hydra", "main", "schema")


class UnreadableFile(ValueError):
    """A file of a run or sweep directory exists but cannot be used; the message names it."""


def read_json_dict(path: Path) -> Optional[dict]:
    """A JSON file's object, or None when the file is missing, unreadable or not an object."""
    try:
        content = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) else None


def write_json(path: Path, content: Any) -> None:
    contract.atomic_write(Path(path), lambda f: json.dump(contract.json_safe(content), f,
                                                          indent=2, allow_nan=False))


def flatten(tree: Mapping, prefix: str = "") -> dict:
    """A nested config as ``{"optimizer.lr": 0.001, "data.mean": "[0.485, 0.456, 0.406]"}``.

    The one policy for every reader: scalars (None included) stay as they are, so that numbers
    compare and sort as numbers; a list or an empty mapping becomes its JSON text, so that every
    value can be grouped, compared and logged by a tracker."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        elif value is None or isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = json.dumps(value if not isinstance(value, Mapping) else dict(value))
    return flat


def _rel(path: Path) -> str:
    """A run's file as the run names it: ``.hydra/config.yaml``, ``summary.json``."""
    return (f"{path.parent.name}/{path.name}" if path.parent.name == contract.HYDRA_DIR
            else path.name)


def read_text(path: Path) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UnreadableFile(f"{_rel(path)}: cannot be read ({err})") from err
    if not text.strip():
        raise UnreadableFile(f"{_rel(path)} is empty")
    return text


def read_yaml(path: Path, want: type) -> Any:
    """A YAML file's content, which must be a ``want`` (dict or list)."""
    try:
        data = yaml.load(read_text(path), Loader=_YamlLoader)
    except yaml.YAMLError as err:
        raise UnreadableFile(f"{_rel(path)} is not valid YAML "
                             f"({str(err).splitlines()[0]})") from err
    if not isinstance(data, want):
        raise UnreadableFile(f"{_rel(path)}: expected a YAML {want.__name__}, found "
                             f"{type(data).__name__}")
    return data


def _lenient(read, *args, default=None):
    try:
        return read(*args)
    except (UnreadableFile, FileNotFoundError):
        return default


class RunDir:
    """One run directory (the layout: ``optsweep.contract``)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # --- its files ------------------------------------------------------------------------------

    @property
    def hydra_dir(self) -> Path:
        return self.path / contract.HYDRA_DIR

    @property
    def config_file(self) -> Path:
        return self.hydra_dir / contract.CONFIG_FILE

    @property
    def overrides_file(self) -> Path:
        return self.hydra_dir / contract.OVERRIDES_FILE

    @property
    def hydra_file(self) -> Path:
        return self.hydra_dir / contract.HYDRA_FILE

    @property
    def metrics_file(self) -> Path:
        return self.path / contract.METRICS_FILE

    @property
    def summary_file(self) -> Path:
        return self.path / contract.SUMMARY_FILE

    @property
    def tracking_file(self) -> Path:
        return self.path / contract.TRACKING_FILE

    @staticmethod
    def marks_run(dirs: Iterable[str], files: Iterable[str]) -> bool:
        """Whether a folder listing (``os.walk``'s) is a run directory's: a ``.hydra/`` folder, a
        summary or metrics."""
        files = set(files)
        return contract.HYDRA_DIR in set(dirs) or bool(
            {contract.SUMMARY_FILE, contract.METRICS_FILE} & files)

    def is_run(self) -> bool:
        return self.hydra_dir.is_dir() or self.summary_file.is_file() or self.metrics_file.is_file()

    # --- reading, strict ------------------------------------------------------------------------

    def read_config(self) -> dict:
        """``.hydra/config.yaml``: the run's resolved config as Hydra saved it."""
        return read_yaml(self.config_file, dict)

    def read_overrides(self) -> list[str]:
        """``.hydra/overrides.yaml``: the run's own command-line overrides ([] without a file)."""
        if not self.overrides_file.is_file():
            return []
        return [str(o) for o in read_yaml(self.overrides_file, list)]

    def read_summary(self) -> Optional[dict]:
        """``summary.json`` (None without one), whose status must be a recorded one."""
        if not self.summary_file.is_file():
            return None
        try:
            content = json.loads(read_text(self.summary_file))
        except json.JSONDecodeError as err:
            raise UnreadableFile(f"{contract.SUMMARY_FILE} is not valid JSON ({err})") from err
        if not isinstance(content, dict):
            raise UnreadableFile(f"{contract.SUMMARY_FILE}: expected a JSON object")
        if content.get("status") not in contract.RECORDED:
            raise UnreadableFile(f"{contract.SUMMARY_FILE}: status {content.get('status')!r} is "
                                 f"not one of {', '.join(contract.RECORDED)}")
        return content

    # --- reading, lenient -----------------------------------------------------------------------

    def config(self) -> Optional[dict]:
        return _lenient(self.read_config)

    def flat_config(self) -> dict:
        """The config flattened by ``flatten``'s one policy ({} without a readable config)."""
        return flatten(self.config() or {})

    def overrides(self) -> list[str]:
        return _lenient(self.read_overrides, default=[])

    def hydra_choices(self) -> dict:
        """Hydra's group choices (``hydra.runtime.choices`` in ``.hydra/hydra.yaml``)."""
        return dict(self._hydra_runtime().get("choices") or {})

    def config_searchpath(self) -> tuple[str, ...]:
        """The config folders the run composed from beyond Hydra's own and the app's main one
        (``hydra.searchpath``, ``--config-dir``), as ``hydra.searchpath`` entries; a relative
        folder is made absolute against the run's working directory, where Hydra read it."""
        runtime = self._hydra_runtime()
        cwd = Path(str(runtime.get("cwd") or "."))
        entries = []
        for source in runtime.get("config_sources") or []:
            if not isinstance(source, dict) or source.get("provider") in HYDRA_OWN_SOURCES:
                continue
            schema, path = source.get("schema"), str(source.get("path") or "")
            entries.append(f"{schema}://{cwd / path if schema == 'file' else path}")
        return tuple(entries)

    def hydra_config(self) -> dict:
        """The ``hydra`` node of ``.hydra/hydra.yaml``: Hydra's own config for the run (its
        runtime, sweeper, launcher); {} without a readable file."""
        hydra = _lenient(read_yaml, self.hydra_file, dict, default={})
        return dict(hydra.get("hydra") or {})

    def _hydra_runtime(self) -> dict:
        """``hydra.runtime`` of ``.hydra/hydra.yaml`` ({} without a readable file)."""
        return dict(self.hydra_config().get("runtime") or {})

    def choices(self) -> dict:
        """The group choices the summary recorded, else Hydra's (a run still running)."""
        return dict((self.summary() or {}).get("choices") or self.hydra_choices())

    def summary(self) -> Optional[dict]:
        return read_json_dict(self.summary_file)

    def status(self) -> Status:
        return contract.status_of(self.summary())

    def metrics(self) -> list[dict]:
        """metrics.csv's rows as numbers (None where a column was not measured); [] without one."""
        try:
            with open(self.metrics_file, newline="") as f:
                return [{k: float(v) if v not in ("", None) else None for k, v in row.items()}
                        for row in csv.DictReader(f)]
        except FileNotFoundError:
            return []

    def tracking(self) -> dict:
        """``tracking.json``: each tracker's ids for this run ({} without one)."""
        return read_json_dict(self.tracking_file) or {}

    # --- writing --------------------------------------------------------------------------------

    def write_metrics(self, rows: Iterable[Mapping]) -> None:
        """Rewrite metrics.csv with every finished epoch (a few KB: cheaper than any append
        protocol)."""
        columns = contract.METRIC_COLUMNS

        def write(f: io.TextIOBase) -> None:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})

        contract.atomic_write(self.metrics_file, write)

    def write_summary(self, content: Mapping) -> None:
        write_json(self.summary_file, dict(content))

    def write_failed_summary(self, error: str, cfg: Mapping, **facts: Any) -> Outcome:
        """A run that failed before or outside training (bad config, missing data, a sweep job's
        crash) is still a recorded result: failed, with the worst finite value of the run's own
        objective (``contract.recorded_objective(cfg)``)."""
        content = contract.summary(Status.FAILED, contract.recorded_objective(cfg), error=error,
                                   **facts)
        self.write_summary(content)
        return Outcome.from_summary(contract.json_safe(content))

    def write_tracking(self, content: Mapping) -> None:
        write_json(self.tracking_file, dict(content))


class SweepDir:
    """A sweep's folder (``hydra.sweep.dir``): its job directories and the sweep's own files."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @property
    def command_file(self) -> Path:
        return self.path / contract.SWEEP_COMMAND_FILE

    @property
    def started_file(self) -> Path:
        return self.path / contract.SWEEP_STARTED_FILE

    @property
    def summary_files(self) -> tuple[Path, ...]:
        return tuple(self.path / name for name in contract.SWEEP_SUMMARY_FILES)

    @property
    def optuna_db(self) -> Path:
        return self.path / contract.OPTUNA_DB_FILE

    def jobs(self) -> list[RunDir]:
        """Every job directory below the sweep (any depth): one holding ``.hydra/config.yaml``."""
        return [RunDir(config.parent.parent) for config in self.job_configs()]

    def job_configs(self) -> Iterator[Path]:
        """The ``.hydra/config.yaml`` of each job directory below the sweep, as found."""
        return self.path.rglob(f"{contract.HYDRA_DIR}/{contract.CONFIG_FILE}")

    def command(self) -> Optional[list]:
        """The overrides of the command that started the sweep; None before one did."""
        return (read_json_dict(self.command_file) or {}).get("overrides")

    def write_command(self, overrides: Sequence[str]) -> None:
        write_json(self.command_file, {"overrides": list(overrides)})

    def mark_started(self) -> int:
        """Touch the start marker; its mtime in ns, on the file system's clock (as the jobs'
        files will carry it, also on a cluster's NFS)."""
        self.started_file.touch()
        return self.started_file.stat().st_mtime_ns

    def write_sweep_summary(self, rows: Sequence[Mapping], columns: Sequence[str]) -> None:
        """The sweep's table of jobs, as CSV and as JSON."""
        def write_csv(f: io.TextIOBase) -> None:
            writer = csv.DictWriter(f, fieldnames=list(columns))
            writer.writeheader()
            writer.writerows(rows)

        csv_file, json_file = self.summary_files
        contract.atomic_write(csv_file, write_csv)
        contract.atomic_write(json_file, lambda f: json.dump(list(rows), f, indent=2))


class BenchmarkDir:
    """A benchmark's folder (``python -m optsweep.benchmark``'s ``dir``): per workload, per
    optimizer the Optuna study that tuned it (``<workload>/<optimizer>/``), the confirmation of
    its chosen setting (``<workload>/<optimizer>_confirm/``) and every optimizer at its defaults
    (``<workload>/defaults/``), each a sweep's folder; the manifest (``benchmark.json``) and the
    report (``report/``). The benchmark writes this layout and the analysis reads it."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @property
    def manifest_file(self) -> Path:
        return self.path / contract.BENCHMARK_MANIFEST_FILE

    @property
    def report_dir(self) -> Path:
        return self.path / contract.BENCHMARK_REPORT_DIR

    def study_dir(self, workload: str, optimizer: str) -> Path:
        return self.path / workload / optimizer

    def confirm_dir(self, workload: str, optimizer: str) -> Path:
        return self.path / workload / f"{optimizer}{contract.BENCHMARK_CONFIRM_SUFFIX}"

    def defaults_dir(self, workload: str) -> Path:
        return self.path / workload / contract.BENCHMARK_DEFAULTS_DIR

    @property
    def slot_time_file(self) -> Path:
        return self.path / contract.BENCHMARK_SLOT_TIME_FILE

    @contextlib.contextmanager
    def report_lock(self) -> Iterator[None]:
        """Held while the report is written: benchmarks that share this folder (one command on
        several machines) write it one after another, never into each other's files."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / contract.BENCHMARK_REPORT_LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def write_slot_time(self, slot_time: dict) -> None:
        contract.atomic_write(self.slot_time_file, lambda f: json.dump(slot_time, f, indent=2))

    def read_slot_time(self) -> Optional[dict]:
        """The last pool's slot time (None: no pool ran here, or it was killed)."""
        return read_json_dict(self.slot_time_file)

    def is_benchmark(self) -> bool:
        return self.manifest_file.is_file()

    def read_manifest(self) -> dict:
        return json.loads(self.manifest_file.read_text(encoding="utf-8"))


# --- the guard of a single run's directory --------------------------------------------------------


def refuse(message: str) -> None:
    """Exit with status 2 and one line; SystemExit, not an exception, because Hydra turns a
    callback's exceptions into warnings."""
    print(f"optsweep: error: {message}", file=sys.stderr)
    sys.exit(2)


def refuse_unwritable(key: str, path: Path) -> None:
    """Exit with one line naming ``key`` when ``path`` cannot be created or written."""
    problem = unwritable(path)
    if problem:
        refuse(f"{key}={path} cannot be created or written ({problem}); name a writable "
               f"directory with {key}=PATH")


class RunDirGuard(Callback):
    """Before a single run (``hydra.callbacks`` in conf/config.yaml): its directory must be
    writable, and must not hold the finished result of another config (Hydra would overwrite its
    ``.hydra/`` and training its metrics); the same config there is left to ``train`` (skipped
    when final, resumed otherwise)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = Path(str(config.hydra.run.dir))
        refuse_unwritable("hydra.run.dir", run_dir)
        task = OmegaConf.masked_copy(config, [str(k) for k in config if k != "hydra"])
        try:
            fingerprint = contract.config_fingerprint(task)
        except Exception:  # an unresolvable value (data.root=???): train() will name it
            return
        previous = RunDir(run_dir).summary()
        if previous is not None and contract.status_of(previous) in contract.FINAL \
                and previous.get("config_fingerprint") != fingerprint:
            refuse(f"hydra.run.dir={run_dir} holds a {previous['status']} run of another "
                   f"config; its {contract.METRICS_FILE}, {contract.SUMMARY_FILE} and "
                   f"{contract.HYDRA_DIR}/ would be overwritten. Name a new directory with "
                   "hydra.run.dir=PATH (or rerun that config there)")
