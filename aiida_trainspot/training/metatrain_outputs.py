"""What ``mtt train`` wrote, read as pure functions (no AiiDA): per-epoch metrics, final errors and how it stopped.

``mtt train`` logs to its standard output and to ``outputs/<date>/<time>/train.log`` (the same lines), writes one
row per logged epoch to ``outputs/<date>/<time>/train.csv`` (a header row, a units row, then the values), the
resolved options to ``options_restart.yaml`` there, a checkpoint ``model_<epoch>.ckpt`` there every
``checkpoint_interval`` epochs, and at the end ``model.pt``, ``model.ckpt`` and ``extensions/`` in the working
directory, followed by the error table of each set. On an error it logs ``[ERROR]`` and the message, writes the
traceback to ``error.log`` and exits with status 1.

Units are metatrain's: energies in meV per atom, forces in meV/Å. The stress enters metatrain's loss as the strain
derivative of the energy (the virial, −V·σ), so metatrain reports its errors as the **virial per atom** in meV/atom;
they are kept as such here (named ``virial_*``), not converted to a stress, which would need each frame's volume.
metatrain numbers epochs from 0 (the first epoch, after its training) and goes on counting across restarts; the
column names follow those of the MACE metrics (``train_loss``, ``valid_forces_rmse``...), the units say what is per
atom.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import yaml

CSV_FILENAME = 'train.csv'
OPTIONS_FILENAME = 'options_restart.yaml'
ERROR_FILENAME = 'error.log'
STARTED_MARKER = 'Starting training'
FINISHED_MARKER = 'Training finished!'
ERROR_MARKER = '][ERROR] - '
LOSS_LIMIT = 1e10
"""Largest plausible loss: metatrain's losses are in units of the (scaled) targets, of order 1 to 1e3 at the start."""
DIVERGENCE_FACTOR = 100.0
"""A training loss that ends this many times above its lowest value of the run is diverging."""
OUT_OF_MEMORY = re.compile(
    r'out of memory|OutOfMemoryError|not enough memory|Cannot allocate memory|can\'t allocate memory|'
    r'std::bad_alloc|oom[-_ ]kill',
    re.IGNORECASE,
)
NOT_FINITE = re.compile(r'\bnan\b|\binf(inity)?\b|not finite', re.IGNORECASE)
ATOMIC_TYPES = re.compile(r'Model defined for atomic types: \[([\d,\s]*)\]')
EVALUATING = re.compile(r'Evaluating (training|validation|test) dataset')
ERROR_ENTRY = re.compile(r'(?P<name>\w+) (?P<kind>RMSE|MAE)(?P<per_atom> \(per atom\))?: (?P<value>\S+) (?P<unit>\S+)')
SETS = {'training': 'train', 'validation': 'valid', 'test': 'test'}
"""The datasets metatrain evaluates at the end and their split tags."""
SET_PREFIXES = {'training': 'train', 'validation': 'valid'}
PER_ATOM = ' (per atom)'
BEST_EPOCH = re.compile(r'Using best model from epoch (\d+)')
QUANTITIES = {'energy': 'energy', 'energy_positions_gradients': 'forces', 'energy_strain_gradients': 'virial'}
"""The names metatrain gives the energy and its gradients in its error table, and ours."""
UNITS = {'meV': 'meV', 'meV/A': 'meV/Å', 'eV': 'eV', 'eV/A': 'eV/Å'}


def column_name(header: str) -> str:
    """Return the array name of a ``train.csv`` column: ``validation energy RMSE (per atom)`` → ``valid_energy_rmse``.

    The names are those of the MACE metrics (``train_``/``valid_`` prefixes); units say what is per atom.
    """
    words = re.sub(r'[^0-9a-z]+', ' ', header.lower().replace(PER_ATOM, '')).split()
    return '_'.join(SET_PREFIXES.get(word, word) if index == 0 else word for index, word in enumerate(words))


def _unit(unit: str, per_atom: bool) -> str:
    """Return ``unit`` with ``Å`` for ``A`` and ``/atom`` for a per-atom quantity."""
    unit = UNITS.get(unit, unit)
    return f'{unit}/atom' if per_atom and unit else unit


@dataclass
class Metrics:
    """The columns of ``train.csv`` by array name (``epoch``, ``train_loss``, ``valid_forces_rmse``...)."""

    columns: dict[str, np.ndarray] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)

    @property
    def epochs(self) -> np.ndarray:
        """Return metatrain's index of the epoch of each row (from 0 for the first epoch, and on across restarts)."""
        return self.columns.get('epoch', np.zeros(0, dtype=int))


def read_metrics(text: str) -> Metrics:
    """Return the metrics in the text of ``train.csv`` (none if empty); raise ``ValueError`` naming a bad line."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return Metrics()  # metatrain writes the file when it logs the first epoch
    if len(rows) < 2:
        raise ValueError('it has no units row')
    header, units = rows[0], rows[1]
    if len(units) != len(header) or not header or column_name(header[0]) != 'epoch':
        raise ValueError('its first two rows are not the columns (from `Epoch`) and their units')
    values = []
    for number, row in enumerate(rows[2:], start=3):
        try:
            values.append([float(item) for item in row])
        except ValueError:
            raise ValueError(f'line {number} holds a value that is not a number: {",".join(row)!r}') from None
        if len(row) != len(header):
            raise ValueError(f'line {number} has {len(row)} values for {len(header)} columns')
    table = np.array(values, dtype=float).reshape(len(values), len(header))
    metrics = Metrics()
    for index, (name, unit) in enumerate(zip(header, units, strict=True)):
        key = column_name(name)
        metrics.columns[key] = table[:, index].astype(int) if key == 'epoch' else table[:, index]
        metrics.units[key] = _unit(unit.strip(), PER_ATOM in name)
    return metrics


def loss_problem(metrics: Metrics) -> str | None:
    """Return why the losses of ``metrics`` show a failed training (not finite, absurd or diverging), or ``None``."""
    epochs = metrics.epochs
    for name, words in (('train_loss', 'training loss'), ('valid_loss', 'validation loss')):
        losses = metrics.columns.get(name, np.zeros(0))
        bad = np.flatnonzero(~np.isfinite(losses) | (losses > LOSS_LIMIT))
        if len(bad):
            return f'the {words} is {losses[bad[0]]:.4g} at epoch {epochs[bad[0]]}'
    losses = metrics.columns.get('train_loss', np.zeros(0))
    if len(losses) > 1 and losses[-1] > DIVERGENCE_FACTOR * losses.min() > 0:
        lowest = int(np.argmin(losses))
        return (
            f'the training loss diverges: {losses[-1]:.4g} at epoch {epochs[-1]}, more than {DIVERGENCE_FACTOR:g} '
            f'times its lowest value {losses[lowest]:.4g} at epoch {epochs[lowest]}'
        )
    return None


def final_errors(log: str) -> dict[str, dict[str, float]]:
    """Return the errors metatrain printed for each set after training: ``{'train': {'forces_rmse': ...}, ...}``.

    Names are ``<quantity>_<rmse|mae>`` with quantity ``energy`` (per atom), ``forces`` or ``virial`` (per atom);
    :func:`final_error_units` gives the unit of each quantity.
    """
    errors: dict[str, dict[str, float]] = {}
    current = None
    for line in log.splitlines():
        match = EVALUATING.search(line)
        if match:
            current = SETS[match.group(1)]
            continue
        entries = list(ERROR_ENTRY.finditer(line)) if current else []
        if entries:
            errors[current] = {_error_name(entry): float(entry.group('value')) for entry in entries}
            current = None
    return errors


def _quantity(entry: re.Match) -> str:
    """Return our name of the quantity of one entry of metatrain's error table."""
    return QUANTITIES.get(entry.group('name'), entry.group('name'))


def _error_name(entry: re.Match) -> str:
    """Return our name of one entry of metatrain's error table."""
    return f'{_quantity(entry)}_{entry.group("kind").lower()}'


def final_error_units(log: str) -> dict[str, str]:
    """Return the unit of each quantity (``energy``, ``forces``, ``virial``) in metatrain's error tables of ``log``."""
    return {
        _quantity(entry): _unit(entry.group('unit'), bool(entry.group('per_atom')))
        for line in log.splitlines()
        for entry in ERROR_ENTRY.finditer(line)
    }


def best_epoch(log: str) -> int | None:
    """Return metatrain's index of the epoch whose model it exported (the best validation), as it logged it."""
    matches = BEST_EPOCH.findall(log)
    return int(matches[-1]) if matches else None


def error_reason(log: str) -> str | None:
    """Return the message of the error ``mtt`` reported (the line after its ``[ERROR]`` preamble), or ``None``."""
    lines = log.splitlines()
    for index, line in enumerate(lines):
        if ERROR_MARKER in line:
            following = (item.strip() for item in lines[index + 1 :])
            message = next((item for item in following if item and not item.startswith('[')), None)
            return message or line.split(ERROR_MARKER, 1)[1].strip()
    return None


def atomic_types(log: str) -> list[int]:
    """Return the atomic numbers metatrain defined the model for, as it logged them (empty if it did not)."""
    match = ATOMIC_TYPES.search(log)
    return [int(item) for item in match.group(1).replace(',', ' ').split()] if match else []


def read_resolved_options(text: str) -> dict:
    """Return the options metatrain resolved (``options_restart.yaml``); raise ``ValueError`` if unreadable."""
    try:
        options = yaml.safe_load(text)
    except yaml.YAMLError as exception:
        raise ValueError(f'it is not YAML: {exception}') from None
    if not isinstance(options, dict) or not isinstance(options.get('architecture'), dict):
        raise ValueError('it has no `architecture` section')
    return options


def resume_epoch(epochs: Sequence[int], interval: int) -> int | None:
    """Return the epoch of the newest checkpoint a run that logged ``epochs`` saved, or ``None`` if it saved none.

    metatrain saves ``model_<epoch>.ckpt`` after each epoch that is a multiple of ``checkpoint_interval``.
    """
    if not len(epochs):
        return None
    newest = int(epochs[-1]) // interval * interval
    return newest if newest >= int(epochs[0]) else None


@dataclass
class RunEvidence:
    """What tells how a run of ``mtt train`` ended: its log, its and the scheduler's messages, its metrics."""

    log: str | None
    stderr: str = ''
    metrics: Metrics | None = None
    scheduler_out_of_memory: bool = False
    scheduler_out_of_walltime: bool = False
    resumed: bool = False

    def interrupted(self) -> bool:
        """Return whether training started and stopped without finishing or reporting an error."""
        log = self.log or ''
        return STARTED_MARKER in log and FINISHED_MARKER not in log and ERROR_MARKER not in log


FAILURES = (
    'ERROR_OUT_OF_MEMORY',
    'ERROR_LOSS_NOT_FINITE',
    'ERROR_OUT_OF_WALLTIME',
    'ERROR_OUTPUT_STDOUT_MISSING',
    'ERROR_TRAINER_FAILED',
)
"""The failures :func:`diagnose` tells apart, in the order it checks them: the first that applies is the one."""


def diagnose(evidence: RunEvidence) -> tuple[str, str] | None:
    """Return the failure of a run and its reason, checked in the order of :data:`FAILURES`, or ``None``.

    Memory first (a run killed for it shows nothing else), then a loss that is not finite or diverges (whatever
    stopped the run, resuming it would not help), then the walltime (the scheduler said so, or training stopped
    without finishing and without an error while there was a checkpoint to go on from), then a missing log, then
    any error ``mtt`` reported or an end before training finished.
    """
    log = evidence.log or ''
    reason = error_reason(log)
    memory = OUT_OF_MEMORY.search(f'{reason or ""}\n{evidence.stderr}')
    if evidence.scheduler_out_of_memory or memory:
        return FAILURES[0], memory.group(0) if memory else 'the scheduler reported it'
    problem = loss_problem(evidence.metrics) if evidence.metrics else None
    if problem or (reason and NOT_FINITE.search(reason)):
        return FAILURES[1], problem or f'mtt stopped with: {reason}'
    last = evidence.metrics.epochs[-1] if evidence.metrics and len(evidence.metrics.epochs) else None
    if evidence.scheduler_out_of_walltime:
        return FAILURES[2], 'the scheduler stopped the job at its walltime'
    if evidence.interrupted() and (last is not None or evidence.resumed):
        return FAILURES[2], f'training stopped after epoch {last} without finishing or reporting an error'
    if evidence.log is None:
        return FAILURES[3], 'mtt train did not write its standard output'
    if reason:
        return FAILURES[4], reason
    if FINISHED_MARKER not in log:
        where = 'before the end of its first epoch' if STARTED_MARKER in log else 'before training'
        last_line = next((line for line in reversed(evidence.stderr.splitlines()) if line.strip()), 'no message')
        return FAILURES[4], f'mtt train stopped {where} without reporting an error; last message: {last_line}'
    return None
