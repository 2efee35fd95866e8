"""The MD spec (``md.json``) of ``trainspot-md``: its fields, defaults and validation (pure, no AiiDA).

Fields and units:

- ``ensemble``: ``nvt`` (Langevin thermostat) or ``npt`` (Berendsen thermostat and barostat, the barostat acting only
  on the periodic directions of each structure);
- ``temperature`` (K, positive), ``pressure`` (GPa, ``npt`` only, default 0), ``timestep`` (fs, positive), ``steps``
  (positive), ``thermalisation`` (steps before frames are kept, fewer than ``steps``), ``stride`` (steps between kept
  frames);
- ``friction`` (1/fs, Langevin), ``taut`` and ``taup`` (fs, Berendsen), ``compressibility`` (1/GPa, Berendsen);
- ``seed`` (initial velocities and Langevin noise), ``iteration`` (written in every frame);
- ``min_distance`` (Å) and ``max_force`` (eV/Å): the stability guard stops a run below or above them (and on NaN);
- ``uncertainty_stop``: ``null`` or ``{"threshold": eV/Å, "every": steps}``, stop at the first checked step whose force
  disagreement (seed 000 Eq. 1) is above the threshold (needs a committee); or ``{"moving_average": state,
  "training_set_size": frames, "every": steps}``, the same against the moving-average threshold of seed 000 Eq. 2,
  which every check of this run updates, starting from ``state``
  (:meth:`~aiida_trainspot.uncertainty.threshold.MovingAverageThreshold.state`);
- ``drive``: ``"mean"`` (the committee mean) or the index of the member that drives the dynamics.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

from ..uncertainty.threshold import MovingAverageThreshold

ENSEMBLES = ('nvt', 'npt')
DEFAULTS: dict[str, Any] = {
    'ensemble': 'nvt',
    'temperature': 300.0,
    'pressure': None,
    'timestep': 1.0,
    'steps': 1000,
    'thermalisation': 0,
    'stride': 10,
    'friction': 0.01,
    'taut': 100.0,
    'taup': 1000.0,
    'compressibility': 0.01,
    'seed': 0,
    'iteration': 0,
    'min_distance': 0.5,
    'max_force': 50.0,
    'uncertainty_stop': None,
    'drive': 'mean',
}
"""Defaults of the MD spec; every other key is rejected."""
POSITIVE_NUMBERS = (
    'temperature',
    'timestep',
    'friction',
    'taut',
    'taup',
    'compressibility',
    'min_distance',
    'max_force',
)
POSITIVE_INTEGERS = ('steps', 'stride')
NON_NEGATIVE_INTEGERS = ('thermalisation', 'seed', 'iteration')


def _is_number(value: Any) -> bool:
    """Return whether ``value`` is a real number (booleans are not)."""
    return isinstance(value, Real) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    """Return whether ``value`` is an integer (booleans are not)."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def _field_error(spec: dict[str, Any]) -> str | None:
    """Return a message naming the first field of the complete ``spec`` with a bad type or value, or ``None``."""
    if spec['ensemble'] not in ENSEMBLES:
        return f'`ensemble` must be one of {ENSEMBLES}, got {spec["ensemble"]!r}'
    for name in POSITIVE_NUMBERS:
        if not _is_number(spec[name]) or not spec[name] > 0:
            return f'`{name}` must be a positive number, got {spec[name]!r}'
    for name in POSITIVE_INTEGERS:
        if not _is_integer(spec[name]) or spec[name] < 1:
            return f'`{name}` must be a positive integer, got {spec[name]!r}'
    for name in NON_NEGATIVE_INTEGERS:
        if not _is_integer(spec[name]) or spec[name] < 0:
            return f'`{name}` must be a non-negative integer, got {spec[name]!r}'
    if spec['pressure'] is not None and not _is_number(spec['pressure']):
        return f'`pressure` must be a number (GPa) or null, got {spec["pressure"]!r}'
    if spec['pressure'] is not None and spec['ensemble'] != 'npt':
        return f'`pressure` is only used by the `npt` ensemble, got it for `{spec["ensemble"]}`'
    if spec['thermalisation'] >= spec['steps']:
        return (
            f'`thermalisation` ({spec["thermalisation"]} steps) must be shorter than the run (`steps` {spec["steps"]})'
        )
    drive = spec['drive']
    if drive != 'mean' and not (_is_integer(drive) and drive >= 0):
        return f'`drive` must be "mean" or a member index, got {drive!r}'
    return _uncertainty_stop_error(spec['uncertainty_stop'])


MOVING_AVERAGE_STOP = {'moving_average', 'training_set_size', 'every'}
"""The fields of an uncertainty stop against the moving-average threshold."""


def _uncertainty_stop_error(stop: Any) -> str | None:
    """Return a message if ``stop`` is not ``None``, a fixed threshold stop or a moving-average one."""
    if stop is None:
        return None
    if isinstance(stop, dict) and set(stop) == MOVING_AVERAGE_STOP:
        return _moving_average_error(stop)
    if not isinstance(stop, dict) or set(stop) != {'threshold', 'every'}:
        return (
            '`uncertainty_stop` must be null, {"threshold": eV/Å, "every": steps} or {"moving_average": state, '
            f'"training_set_size": frames, "every": steps}}, got {stop!r}'
        )
    if not _is_number(stop['threshold']) or not stop['threshold'] > 0:
        return f'`uncertainty_stop.threshold` must be a positive number (eV/Å), got {stop["threshold"]!r}'
    return _every_error(stop)


def _moving_average_error(stop: dict) -> str | None:
    """Return a message if the moving-average stop ``stop`` has a bad state, training-set size or check interval."""
    try:
        MovingAverageThreshold.from_state(stop['moving_average'])
    except (KeyError, TypeError, ValueError, AttributeError) as exception:
        return f'`uncertainty_stop.moving_average` is not a threshold state: {type(exception).__name__}: {exception}'
    if not _is_integer(stop['training_set_size']) or stop['training_set_size'] < 0:
        return f'`uncertainty_stop.training_set_size` must be a non-negative integer, got {stop["training_set_size"]!r}'
    return _every_error(stop)


def _every_error(stop: dict) -> str | None:
    """Return a message if the check interval of ``stop`` is not a positive integer."""
    if not _is_integer(stop['every']) or stop['every'] < 1:
        return f'`uncertainty_stop.every` must be a positive integer, got {stop["every"]!r}'
    return None


def md_spec_error(spec: Any, num_models: int | None = None, pbcs: Sequence[Sequence[bool]] | None = None) -> str | None:
    """Return a message naming the first invalid field of the MD ``spec``, or ``None`` if it is valid.

    With ``num_models``, also check that ``drive`` names one of the models and that an uncertainty stop has a
    committee; with ``pbcs`` (the periodicity of each starting structure), that ``npt`` has a periodic direction in
    every structure.
    """
    if not isinstance(spec, dict):
        return f'the MD spec must be a JSON object, got {type(spec).__name__}'
    unknown = sorted(set(spec) - set(DEFAULTS))
    if unknown:
        return f'unknown MD spec fields {unknown}; known: {sorted(DEFAULTS)}'
    spec = {**DEFAULTS, **spec}
    message = _field_error(spec)
    if message or num_models is None:
        return message
    if spec['drive'] != 'mean' and spec['drive'] >= num_models:
        return f'`drive` is member {spec["drive"]} but there are {num_models} models'
    if spec['uncertainty_stop'] is not None and num_models < 2:
        return f'`uncertainty_stop` needs a committee of at least 2 models, got {num_models}'
    if pbcs is not None and spec['ensemble'] == 'npt':
        for index, pbc in enumerate(pbcs):
            if not any(pbc):
                return f'`pressure`/`npt`: structure {index} is not periodic in any direction, use `nvt`'
    return None


def validate_md_spec(
    spec: Any, num_models: int | None = None, pbcs: Sequence[Sequence[bool]] | None = None
) -> dict[str, Any]:
    """Return ``spec`` with its defaults filled in, or raise ``ValueError`` with :func:`md_spec_error`'s message."""
    message = md_spec_error(spec, num_models, pbcs)
    if message:
        raise ValueError(message)
    return {**DEFAULTS, **spec}
