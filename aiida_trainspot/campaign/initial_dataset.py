"""The rules of the initial dataset generation (aims-PAX IDG): its parameters, its accuracy, when it stops (no AiiDA).

Parameters (units in brackets), every one optional:

- ``desired_accuracy`` [eV/Å]: the force MAE wanted of the final potential; the IDG stops once the ensemble
  validation force MAE is at most ``desired_accuracy × accuracy_scale`` (aims-PAX ``desired_acc``);
- ``accuracy_scale``: how much looser than ``desired_accuracy`` the IDG may stop (aims-PAX
  ``desired_acc_scale_idg``, default 10);
- ``max_rounds``: most sample → label → train rounds;
- ``max_epochs``: most training epochs of each member over all rounds (aims-PAX ``max_initial_epochs``);
- ``max_dataset_size``: most labelled frames in the dataset, a given ``dataset`` included; enforced, not only
  accepted (aims-PAX's ``max_initial_set_size`` is never read);
- ``epochs_per_round``: training epochs of each member per round (aims-PAX ``intermediate_epochs_idg``, default 5);
- ``seed``: seed of the committee members, the split tags and the MD runs of every round.

At least one stopping criterion must be given: ``desired_accuracy``, ``max_rounds``, ``max_epochs`` or
``max_dataset_size``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

DEFAULTS: dict[str, Any] = {
    'desired_accuracy': None,
    'accuracy_scale': 10.0,
    'max_rounds': None,
    'max_epochs': None,
    'max_dataset_size': None,
    'epochs_per_round': 5,
    'seed': 0,
}
"""Defaults of the ``parameters``; every other key is rejected."""
CRITERIA = ('desired_accuracy', 'max_rounds', 'max_epochs', 'max_dataset_size')
"""The stopping criteria, in their order of precedence."""
COUNTS = ('max_rounds', 'max_epochs', 'max_dataset_size', 'epochs_per_round')
STOP_REASONS = {
    'desired_accuracy': 'the ensemble validation force MAE is within desired_accuracy × accuracy_scale',
    'max_rounds': 'the maximum number of rounds is done',
    'max_epochs': 'the members have trained the maximum number of epochs',
    'max_dataset_size': 'the dataset holds the maximum number of frames',
    'sampling_failed': 'no MD run of the sampling wrote a frame (see the report)',
    'labelling_failed': 'the labelling failed (see the report)',
    'training_failed': 'the committee could not be trained (see the report)',
}
"""Every reason the initial dataset generation stops for, and what it means."""
FAILED_STOPS = ('sampling_failed', 'labelling_failed', 'training_failed')
FORCE_UNITS = {'eV/Å': 1.0, 'meV/Å': 1e-3}
"""Force units the trainers report their errors in, and their value in eV/Å."""


def _is_integer(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def parameters_error(parameters: Any) -> str | None:
    """Return a message naming the first invalid field of ``parameters``, or ``None``."""
    if not isinstance(parameters, Mapping):
        return f'`parameters` must be a mapping, got {type(parameters).__name__}'
    unknown = sorted(set(parameters) - set(DEFAULTS))
    if unknown:
        return f'`parameters` has unknown fields {unknown}; known: {sorted(DEFAULTS)}'
    full = {**DEFAULTS, **parameters}
    for name in ('desired_accuracy', 'accuracy_scale'):
        value = full[name]
        if value is not None and not (_is_number(value) and value > 0):
            return f'`parameters.{name}` must be a positive number (eV/Å for the accuracy), got {value!r}'
    for name in COUNTS:
        value = full[name]
        if value is not None and not (_is_integer(value) and value > 0):
            return f'`parameters.{name}` must be a positive integer, got {value!r}'
    if full['accuracy_scale'] is None or full['epochs_per_round'] is None:
        return '`parameters.accuracy_scale` and `parameters.epochs_per_round` cannot be null'
    if not _is_integer(full['seed']) or not 0 <= full['seed'] < 2**31:
        return f'`parameters.seed` must be an integer in [0, 2**31), got {full["seed"]!r}'
    if all(full[name] is None for name in CRITERIA):
        return f'`parameters` gives no stopping criterion: set at least one of {list(CRITERIA)}'
    return None


def full_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``parameters`` with the defaults filled in."""
    return {**DEFAULTS, **parameters}


def target_mae(parameters: Mapping[str, Any]) -> float | None:
    """Return the force MAE (eV/Å) at which the IDG stops, or ``None`` without ``desired_accuracy``."""
    full = full_parameters(parameters)
    if full['desired_accuracy'] is None:
        return None
    return full['desired_accuracy'] * full['accuracy_scale']


def member_force_mae(errors: Mapping[str, Any]) -> float | None:
    """Return one member's validation force MAE in eV/Å from the ``errors`` its trainer reported, or ``None``.

    ``errors['valid']['forces_mae']`` is in ``errors['units']['forces']`` (meV/Å for MACE, as metatrain logs it).
    """
    value = errors.get('valid', {}).get('forces_mae')
    unit = errors.get('units', {}).get('forces')
    if not _is_number(value) or unit not in FORCE_UNITS:
        return None
    return value * FORCE_UNITS[unit]


def ensemble_force_mae(member_errors: Sequence[Mapping[str, Any]]) -> float | None:
    """Return the mean over members of their validation force MAEs (eV/Å); ``None`` if a member has none.

    The members must have been validated on the same frames (the committee shares its validation frames), so that
    the mean measures the ensemble, not the luck of one member's validation set.
    """
    values = [member_force_mae(errors) for errors in member_errors]
    if not values or any(value is None for value in values):
        return None
    return sum(values) / len(values)


def epochs_this_round(parameters: Mapping[str, Any], epochs_done: int) -> int:
    """Return the epochs each member trains in the next round: ``epochs_per_round``, capped by ``max_epochs``."""
    full = full_parameters(parameters)
    if full['max_epochs'] is None:
        return full['epochs_per_round']
    return max(0, min(full['epochs_per_round'], full['max_epochs'] - epochs_done))


def frames_to_label(parameters: Mapping[str, Any], dataset_size: int, sampled: int) -> int:
    """Return how many of ``sampled`` frames may be labelled without the dataset outgrowing ``max_dataset_size``."""
    limit = full_parameters(parameters)['max_dataset_size']
    return sampled if limit is None else max(0, min(sampled, limit - dataset_size))


def stop_after_round(
    parameters: Mapping[str, Any], rounds_done: int, epochs_done: int, dataset_size: int, mae: float | None
) -> str | None:
    """Return why the IDG stops after a round's training (see :data:`STOP_REASONS`), or ``None`` to go on.

    :param rounds_done: rounds completed, this one included; ``epochs_done``: epochs of each member so far;
        ``dataset_size``: labelled frames in the dataset; ``mae``: the ensemble validation force MAE (eV/Å).
    """
    full = full_parameters(parameters)
    target = target_mae(full)
    if target is not None and mae is not None and mae <= target:
        return 'desired_accuracy'
    if full['max_rounds'] is not None and rounds_done >= full['max_rounds']:
        return 'max_rounds'
    if full['max_epochs'] is not None and epochs_done >= full['max_epochs']:
        return 'max_epochs'
    if full['max_dataset_size'] is not None and dataset_size >= full['max_dataset_size']:
        return 'max_dataset_size'
    return None
