"""``hydra.sweeper.params`` (and the deprecated ``search_space``) as Optuna distributions, with the
meaning hydra-optuna-sweeper 1.3 gives them.

- ``choice(a, b, ...)`` and ``shuffle(range(...))``: categorical;
- ``range(start, stop, step)``: int or float steps from start to stop, stop included when the steps
  reach it (1.3 passes stop as the distribution's ``high``); for the grid sampler the grid is the
  range's own values, stop excluded (1.3's ``_to_grid_sampler_choices``, and Hydra's basic sweeper);
- ``interval(low, high)``: uniform float (Hydra reads its ends as floats), int for
  ``int(interval(low, high))``; ``tag(log, interval(...))``: log-uniform;
- anything else is a fixed value, passed to every trial as an override (and stored as a user
  attribute of the trial, as 1.3 does).

Overrides on the command line (``x=interval(0,1)``) are read the same way and win over the config.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any, Dict, List, Mapping, Optional, Tuple

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from optsweep.sweep.errors import SweepError

log = logging.getLogger(__name__)

Space = Dict[str, BaseDistribution]
MIGRATION = "https://hydra.cc/docs/upgrades/1.1_to_1.2/changes_to_sweeper_config/"


def parse(params: Optional[Mapping[str, Any]], legacy: Optional[Mapping[str, Any]],
          arguments: List[str]) -> Tuple[Space, Dict[str, str]]:
    """The distributions to sample and the fixed overrides of a sweep."""
    space: Space = {}
    if legacy and params is not None:
        _warn("Both hydra.sweeper.params and hydra.sweeper.search_space are set: search_space is "
              f"ignored ({MIGRATION})")
    elif legacy:
        _warn("hydra.sweeper.search_space is deprecated: write the same space under "
              f"hydra.sweeper.params, e.g. x: tag(log, interval(1e-5, 1e-1)) ({MIGRATION})")
        space = {str(name): _refused_as_error(f"hydra.sweeper.search_space.{name}",
                                              legacy_distribution, str(name), node)
                 for name, node in legacy.items()}
    overrides = [f"{name}={value}" for name, value in (params or {}).items()] + list(arguments)
    fixed: Dict[str, str] = {}
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as exc:
        raise SweepError(f"hydra.sweeper.params cannot be parsed: {exc}") from exc
    for override in parsed:
        name = override.get_key_element()
        if override.is_sweep_override():
            space[name] = _refused_as_error(f"hydra.sweeper.params.{name}={_value(override)}",
                                            distribution, override)
            fixed.pop(name, None)
        else:
            fixed[name] = override.get_value_element_as_str()
            space.pop(name, None)
    return space, fixed


def _refused_as_error(where: str, build: Any, *args: Any) -> BaseDistribution:
    """``build(*args)``, with a distribution Optuna refuses (``interval(1, 0)``, a log scale
    from 0) as one ``SweepError`` naming the parameter, before any job."""
    try:
        return build(*args)
    except (ValueError, TypeError) as exc:
        raise SweepError(f"{where} is not a search space Optuna accepts: {exc}") from exc


def _value(override: Override) -> str:
    """The override's value as written (``input_line`` holds ``key=value``)."""
    return str(override.input_line).split("=", 1)[-1]


def _warn(message: str) -> None:
    log.warning(message)
    warnings.warn(message, FutureWarning, stacklevel=3)


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override."""
    value = override.value()
    name = override.get_key_element()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        # any parsed element; Optuna refuses what it cannot hold (a list), and _guarded says so
        choices: List[Any] = list(override.sweep_iterator(transformer=Transformer.encode))
        return CategoricalDistribution(choices)
    if isinstance(value, RangeSweep):
        assert value.start is not None and value.stop is not None  # the parser sets both
        if any(isinstance(x, float) for x in (value.start, value.stop, value.step)):
            return FloatDistribution(float(value.start), float(value.stop), step=float(value.step))
        return IntDistribution(int(value.start), int(value.stop), step=int(value.step))
    if isinstance(value, IntervalSweep):
        log_scale = "log" in value.tags
        assert value.start is not None and value.end is not None  # the parser sets both
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log_scale)
        return FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise SweepError(f"hydra.sweeper.params.{name}={_value(override)} is not a search space "
                     "Optuna can sample: expected choice(...), range(...), interval(...) or "
                     "tag(log, interval(...))")


def legacy_distribution(name: str, node: Mapping[str, Any]) -> BaseDistribution:
    """One entry of the deprecated ``search_space`` ({type, low, high, step, log, choices})."""
    kind = str(node.get("type", "")).split(".")[-1]  # a string or 1.1's DistributionType enum
    # a bound left out is None: int()/float() refuse it, and _guarded names the entry
    low: Any = node.get("low")
    high: Any = node.get("high")
    step, log_scale = node.get("step"), bool(node.get("log", False))
    if kind == "categorical":
        return CategoricalDistribution(list(node["choices"]))
    if kind == "int":
        return IntDistribution(int(low), int(high), log=log_scale,
                               step=1 if step is None else int(step))
    if kind == "float":
        return FloatDistribution(float(low), float(high), log=log_scale,
                                 step=None if step is None else float(step))
    raise SweepError(f"hydra.sweeper.search_space.{name}.type={kind!r} is invalid: expected int, "
                     "float or categorical")


def grid(space: Space) -> Dict[str, List[Any]]:
    """The grid sampler's values of each parameter (discrete distributions only)."""
    values: Dict[str, List[Any]] = {}
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            values[name] = list(dist.choices)
        elif isinstance(dist, (IntDistribution, FloatDistribution)) and dist.step and not dist.log:
            count = math.floor((dist.high - dist.low) / dist.step + 1e-9)
            values[name] = [dist.low + i * dist.step for i in range(count)]
        else:
            raise SweepError(f"hydra.sweeper.params.{name} is continuous: the grid sampler needs "
                             "choice(...) or range(...)")
        if not values[name]:
            raise SweepError(f"hydra.sweeper.params.{name} has no grid values")
    return values


def defaults(space: Space, config: Any) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """``hydra.sweeper.enqueue_defaults``: each searched key at its value in the composed
    ``config`` (a trial 0 to enqueue), and the keys left out, each with why: a value its
    distribution cannot hold would run a setting outside the study's space (Optuna only warns)."""
    from omegaconf import OmegaConf

    config = OmegaConf.create(config) if isinstance(config, dict) else config
    held: Dict[str, Any] = {}
    left_out: Dict[str, str] = {}
    why: Optional[str]
    for name, dist in space.items():
        try:
            value = OmegaConf.select(config, name.lstrip("+"), default=None)
        except Exception as exc:  # an interpolation that cannot resolve
            value, why = None, f"cannot be read: {exc}"
        else:
            why = "is not set in the config" if value is None else None
        if why is None:
            value, why = _held(dist, value)
        if why is None:
            held[name] = value
        else:
            left_out[name] = f"default {value} {why}" if value is not None else why
    return held, left_out


def _held(dist: BaseDistribution, value: Any) -> Tuple[Any, Optional[str]]:
    """(``value`` as ``dist`` stores it, None), or (``value``, why ``dist`` cannot hold it)."""
    if isinstance(dist, CategoricalDistribution):
        for choice in dist.choices:  # the choice itself: 0 for 0.0, so the override reads alike
            if choice == value and isinstance(choice, bool) == isinstance(value, bool):
                return choice, None
        return value, f"is not one of choice{tuple(dist.choices)}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return value, "is not a finite number"
    assert isinstance(dist, (IntDistribution, FloatDistribution))  # a space holds these three
    low, high = dist.low, dist.high
    scale = "log " if getattr(dist, "log", False) else ""
    if not low <= value <= high:
        return value, f"is outside its {scale}range [{low}, {high}]"
    if isinstance(dist, IntDistribution) and value != int(value):
        return value, "is not an integer"
    step = getattr(dist, "step", None)
    if step and abs((value - low) / step - round((value - low) / step)) > 1e-9:
        return value, f"is not on its steps of {step} from {low}"
    return (int(value) if isinstance(dist, IntDistribution) else float(value)), None
