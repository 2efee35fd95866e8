"""The ``active_learning`` settings of a campaign: fields, defaults and validation (pure, no AiiDA).

Fields (units in brackets):

- ``mode``: ``batch`` (stage by stage) or ``parallel`` (after the first committee, the aims-PAX loop of
  :class:`~aiida_trainspot.workflows.pax.ParallelActiveLearningWorkChain`; its last committee is evaluated);
- ``parallel``: the settings of the parallel loop (:mod:`aiida_trainspot.pax.settings`), ``parallel`` mode only;
  without a stopping criterion it labels as many frames as the batch loop would (``max_selected`` per iteration,
  within ``label_budget``);
- ``max_iterations``: explore → select → label cycles, at least 0 (0: label and train once);
- ``label_budget``: most labelled frames in the dataset, initial ones included, or ``None``;
- ``max_selected``: most frames selected for labelling per iteration;
- ``selection_method``: ``random`` (seed 001) or ``diverse`` (farthest-point on a structure descriptor);
- ``tolerances``: true-error tolerances turned into disagreement thresholds by the calibration
  (energy [eV/atom], forces [eV/Å], stress [eV/Å³]); default seed 001's 2 meV/atom, 50 meV/Å, 10 meV/Å³;
- ``thresholds``: fixed disagreement thresholds (same units) used instead of the calibrated ones, or ``None``;
- ``targets``: RMSE targets of the committee mean on ``target_split`` (energy [meV/atom], forces [meV/Å],
  stress [meV/Å³]); the campaign stops when every given target is met;
- ``target_split``: ``valid`` or ``test``;
- ``seed``: seed of the splits, the committee members, the MD runs and the selection.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

from ..pax.settings import STOPPING_FIELDS as PARALLEL_STOPS
from ..pax.settings import settings_error as parallel_settings_error
from ..uncertainty.calibration import DEFAULT_TOLERANCES, PROPERTIES
from ..uncertainty.selection import SELECTION_METHODS

MODES = ('batch', 'parallel')
TARGET_SPLITS = ('valid', 'test')
DEFAULTS: dict[str, Any] = {
    'mode': 'batch',
    'max_iterations': 3,
    'label_budget': None,
    'max_selected': 50,
    'selection_method': 'random',
    'tolerances': None,
    'thresholds': None,
    'targets': None,
    'target_split': 'test',
    'seed': 0,
    'parallel': None,
}
"""Defaults of the ``active_learning`` settings; every other key is rejected."""


def _is_integer(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _positive_map_error(name: str, value: Any) -> str | None:
    """Return a message unless ``value`` maps some of energy/forces/stress to positive numbers."""
    if not isinstance(value, Mapping) or not value:
        return f'`{name}` must map some of {sorted(PROPERTIES)} to positive numbers, got {value!r}'
    unknown = sorted(set(value) - set(PROPERTIES))
    if unknown:
        return f'`{name}` has unknown properties {unknown}: use {sorted(PROPERTIES)}'
    for key, number in value.items():
        if isinstance(number, bool) or not isinstance(number, Real) or not number > 0:
            return f'`{name}.{key}` must be a positive number, got {number!r}'
    return None


def _counts_error(settings: Mapping[str, Any]) -> str | None:
    """Return a message naming the first count field that is not an integer in range."""
    if not _is_integer(settings['max_iterations']) or settings['max_iterations'] < 0:
        return f'`max_iterations` must be an integer ≥ 0, got {settings["max_iterations"]!r}'
    if not _is_integer(settings['max_selected']) or settings['max_selected'] < 1:
        return f'`max_selected` must be an integer ≥ 1, got {settings["max_selected"]!r}'
    budget = settings['label_budget']
    if budget is not None and (not _is_integer(budget) or budget < 1):
        return f'`label_budget` must be a positive integer or null, got {budget!r}'
    if not _is_integer(settings['seed']) or settings['seed'] < 0:
        return f'`seed` must be a non-negative integer, got {settings["seed"]!r}'
    return None


def _choices_error(settings: Mapping[str, Any]) -> str | None:
    """Return a message naming the first field whose value is not one of its choices."""
    for name, choices in (('mode', MODES), ('selection_method', SELECTION_METHODS), ('target_split', TARGET_SPLITS)):
        if settings[name] not in choices:
            return f'`{name}` must be one of {list(choices)}, got {settings[name]!r}'
    return None


def _parallel_error(settings: Mapping[str, Any]) -> str | None:
    """Return a message if the ``parallel`` settings are given without the parallel mode, or are invalid."""
    parallel = settings['parallel']
    if parallel is None:
        return None
    if settings['mode'] != 'parallel':
        return '`active_learning.parallel` is only used with `mode: parallel`'
    message = parallel_settings_error({'label_budget': 1, **parallel} if isinstance(parallel, Mapping) else parallel)
    if message and message.startswith('`'):
        return f'`active_learning.parallel.{message[1:]}'
    return f'`active_learning.parallel`: {message}' if message else None


def parallel_loop_settings(settings: Mapping[str, Any], labelled: int) -> dict[str, Any]:
    """Return the settings of the parallel loop of a campaign whose dataset holds ``labelled`` frames.

    Without a stopping criterion of its own, the loop labels what the batch loop would: ``max_selected`` frames per
    iteration for ``max_iterations`` iterations, within the ``label_budget``; the campaign's ``seed`` is its seed.
    """
    parallel = {'seed': settings['seed'], **(settings['parallel'] or {})}
    if all(parallel.get(name) is None for name in PARALLEL_STOPS):
        budget = settings['max_selected'] * max(settings['max_iterations'], 1)
        if settings['label_budget'] is not None:
            budget = min(budget, settings['label_budget'] - labelled)
        parallel['label_budget'] = max(budget, 1)
    return parallel


def settings_error(settings: Any) -> str | None:
    """Return a message naming the first invalid field of the ``active_learning`` settings, or ``None``."""
    if not isinstance(settings, Mapping):
        return f'`active_learning` must be a mapping, got {type(settings).__name__}'
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        return f'`active_learning` has unknown fields {unknown}; known: {sorted(DEFAULTS)}'
    full = {**DEFAULTS, **settings}
    message = _choices_error(full) or _counts_error(full)
    if message:
        return f'`active_learning.{message[1:]}'
    for name in ('tolerances', 'thresholds', 'targets'):
        if full[name] is not None:
            message = _positive_map_error(name, full[name])
            if message:
                return f'`active_learning.{message[1:]}'
    message = _parallel_error(full)
    if message:
        return message
    if full['tolerances'] is not None and full['thresholds'] is not None:
        return (
            '`active_learning.tolerances` and `active_learning.thresholds` contradict each other: tolerances are '
            'calibrated into thresholds, fixed thresholds skip that; give one'
        )
    return None


def full_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``settings`` with the defaults filled in (``tolerances`` defaulting to seed 001's)."""
    full = {**DEFAULTS, **settings}
    if full['thresholds'] is None:
        full['tolerances'] = {**DEFAULT_TOLERANCES, **(full['tolerances'] or {})}
    return full
