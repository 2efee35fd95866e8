"""The settings of the parallel (aims-PAX) active-learning loop: fields, defaults and validation (pure, no AiiDA).

Fields (units in brackets), with aims-PAX's names where they differ:

- ``num_trajectories``: trajectories explored at once (``num_trajectories``), cycling through the structures;
- ``segment_steps``: MD steps of one segment, a whole number of checks; a trajectory goes on segment after segment;
- ``check_every``: MD steps between two uncertainty checks (``skip_step_mlff``, 25);
- ``threshold_window``, ``c_x``, ``threshold_warmup``, ``freeze_threshold_dataset``: the moving-average threshold of
  seed 000 Eq. 2 (400, 0, 10 checks, never frozen), see :mod:`aiida_trainspot.uncertainty.threshold`;
- ``valid_ratio``: share of the labelled frames that go to validation (0.1), strictly between 0 and 1;
- ``max_dft_workers``: most labelling children at once (default: what the labelling code's computer fits);
- ``max_md_workers``: most MD segments at once (default: one per trajectory);
- ``training_epochs``: epochs of every training chunk (``epochs_per_worker``, 2);
- ``optimizer_patience``: chunks without a better validation loss after which a MACE member's optimizer is reset (2);
  until then each chunk goes on with the member's optimizer and learning-rate schedule;
- ``convergence_epochs``: epochs of the final training of the best member to convergence (0: none);
- ``max_md_steps`` (per trajectory), ``max_train_set_size`` (frames), ``label_budget`` (frames labelled by the
  loop), ``desired_accuracy`` (mean validation force MAE of the members, eV/Å): the stopping criteria, at least one;
- ``seed``: seed of the MD segments and of the final training.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

from ..uncertainty.threshold import DEFAULT_C_X, DEFAULT_WARMUP, DEFAULT_WINDOW, validate_threshold_parameters

STOPPING_FIELDS = ('max_md_steps', 'max_train_set_size', 'label_budget', 'desired_accuracy')
DEFAULTS: dict[str, Any] = {
    'num_trajectories': 4,
    'segment_steps': 200,
    'check_every': 25,
    'threshold_window': DEFAULT_WINDOW,
    'c_x': DEFAULT_C_X,
    'threshold_warmup': DEFAULT_WARMUP,
    'freeze_threshold_dataset': None,
    'valid_ratio': 0.1,
    'max_dft_workers': None,
    'max_md_workers': None,
    'training_epochs': 2,
    'optimizer_patience': 2,
    'convergence_epochs': 50,
    'max_md_steps': None,
    'max_train_set_size': None,
    'label_budget': None,
    'desired_accuracy': None,
    'seed': 0,
}
"""Defaults of the parallel settings; every other key is rejected."""
POSITIVE_INTEGERS = ('num_trajectories', 'segment_steps', 'check_every', 'training_epochs')
OPTIONAL_POSITIVE_INTEGERS = ('max_dft_workers', 'max_md_workers', 'max_md_steps', 'max_train_set_size', 'label_budget')
NON_NEGATIVE_INTEGERS = ('threshold_warmup', 'optimizer_patience', 'convergence_epochs', 'seed')


def _is_integer(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _integer_error(settings: dict[str, Any]) -> str | None:
    """Return a message naming the first integer field with a bad value."""
    for name in POSITIVE_INTEGERS:
        if not _is_integer(settings[name]) or settings[name] < 1:
            return f'`{name}` must be a positive integer, got {settings[name]!r}'
    for name in OPTIONAL_POSITIVE_INTEGERS:
        value = settings[name]
        if value is not None and (not _is_integer(value) or value < 1):
            return f'`{name}` must be a positive integer or null, got {value!r}'
    for name in NON_NEGATIVE_INTEGERS:
        if not _is_integer(settings[name]) or settings[name] < 0:
            return f'`{name}` must be a non-negative integer, got {settings[name]!r}'
    return None


THRESHOLD_NAMES = {
    '`window`': '`threshold_window`',
    '`warmup`': '`threshold_warmup`',
    '`freeze_size`': '`freeze_threshold_dataset`',
}
"""The threshold kernel's parameter names → the names of these settings."""


def _threshold_error(settings: dict[str, Any]) -> str | None:
    """Return a message if the moving-average threshold cannot be built from ``settings``."""
    c_x, freeze = settings['c_x'], settings['freeze_threshold_dataset']
    if not _is_number(c_x):
        return f'`c_x` must be a number greater than -1, got {c_x!r}'
    if freeze is not None and not _is_number(freeze):
        return f'`freeze_threshold_dataset` must be a non-negative number of frames or null, got {freeze!r}'
    message = validate_threshold_parameters(
        settings['threshold_window'],
        float(c_x),
        settings['threshold_warmup'],
        math.inf if freeze is None else float(freeze),
    )
    for kernel_name, name in THRESHOLD_NAMES.items():
        message = message.replace(kernel_name, name) if message else message
    return message


def settings_error(settings: Any) -> str | None:
    """Return a message naming the first invalid field of the parallel ``settings``, or ``None``."""
    if not isinstance(settings, dict):
        return f'the parallel settings must be a mapping, got {type(settings).__name__}'
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        return f'unknown fields {unknown}; known: {sorted(DEFAULTS)}'
    full = {**DEFAULTS, **settings}
    message = _integer_error(full) or _threshold_error(full)
    if message:
        return message
    if full['segment_steps'] % full['check_every']:
        return f'`segment_steps` ({full["segment_steps"]}) must be a multiple of `check_every` ({full["check_every"]})'
    ratio = full['valid_ratio']
    if not _is_number(ratio) or not 0 < ratio < 1:
        return f'`valid_ratio` must lie strictly between 0 and 1, got {ratio!r}'
    accuracy = full['desired_accuracy']
    if accuracy is not None and (not _is_number(accuracy) or not accuracy > 0):
        return f'`desired_accuracy` must be a positive force MAE (eV/Å) or null, got {accuracy!r}'
    if all(full[name] is None for name in STOPPING_FIELDS):
        return f'set at least one stopping criterion: {list(STOPPING_FIELDS)}'
    return None


def full_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Return ``settings`` with the defaults filled in; raise ``ValueError`` with :func:`settings_error`'s message."""
    message = settings_error(settings)
    if message:
        raise ValueError(message)
    return {**DEFAULTS, **settings}
