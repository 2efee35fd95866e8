"""What a ``mace_run_train`` run wrote: its log, its per-epoch JSON lines and the signs of a failed run (no AiiDA).

Everything is read from MACE's own outputs, nothing is recomputed. The per-epoch metrics come from
``results/<name>_run-<seed>_train.txt`` (one JSON object per line: ``mode: opt`` for every batch, ``mode: eval`` for
every validation); the final errors from the error tables at the end of the log. Energies are reported in meV/atom,
forces in meV/Å and stress in meV/Å³.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DATA_HEAD = 'Default'
"""The head that fits the dataset; a replay fine-tuning adds ``pt_head`` for the pre-training frames."""
DIVERGENCE_FACTOR = 1000.0
"""A validation loss this many times above the lowest one of the run counts as diverged."""
OUT_OF_MEMORY_MARKERS = (
    'CUDA out of memory',
    'OutOfMemoryError',
    "DefaultCPUAllocator: can't allocate memory",
    'MemoryError',
    'std::bad_alloc',
    'oom-kill',
    'Out Of Memory',
)
"""Messages of torch, Python, the C++ runtime and SLURM when a job runs out of memory."""
UNITS = {'energy': 'meV/atom', 'forces': 'meV/Å', 'stress': 'meV/Å³', 'forces_relative': '%'}
METRIC_COLUMNS = {
    'valid_energy_rmse': 'rmse_e_per_atom',
    'valid_forces_rmse': 'rmse_f',
    'valid_stress_rmse': 'rmse_stress',
    'valid_energy_mae': 'mae_e_per_atom',
    'valid_forces_mae': 'mae_f',
    'valid_stress_mae': 'mae_stress',
}
"""Columns of the per-epoch metrics (meV units) and the keys of MACE's validation records they come from (eV)."""
TABLE_COLUMNS = {
    'RMSE E / meV / atom': 'energy_rmse',
    'MAE E / meV / atom': 'energy_mae',
    'RMSE F / meV / A': 'forces_rmse',
    'MAE F / meV / A': 'forces_mae',
    'relative F RMSE %': 'forces_relative_rmse',
    'relative F MAE %': 'forces_relative_mae',
    'RMSE Stress (Virials) / meV / A (A^3)': 'stress_rmse',
    'MAE Stress (Virials) / meV / A (A^3)': 'stress_mae',
}
"""Columns of MACE's per-atom error tables and the names of the errors they give."""

_EPOCH_LINE = re.compile(r'INFO: (?:Initial|Epoch (\d+)): head: (\S+), loss=\s*([^,\s]+)')
_ENERGIES_LINE = re.compile(rf'Atomic Energies used \(z: eV\) for head {DATA_HEAD}: (\{{.*\}})')
_NUMBERS_LINE = re.compile(r'Atomic Numbers used: \[(.*)\]')
_CUTOFF_LINE = re.compile(r'Radial cutoff: ([0-9.eE+-]+) A')
_LOADED_LINE = re.compile(r'Loaded Stage (one|two) model from epoch (\d+)')
_TABLE_TITLE = re.compile(r'Error-table on (TRAIN and VALID|TEST):')


@dataclass
class MaceLog:
    """What the standard output of ``mace_run_train`` says.

    ``evaluated_epochs`` are MACE's epoch indices (from 0) of the validations in the log, ``valid_losses`` their
    losses; ``errors`` the rows of the last error tables (``train``, ``valid``, ``test``, ``test_<config_type>``).
    """

    started: bool = False
    completed: bool = False
    finished: bool = False
    evaluated_epochs: list[int] = field(default_factory=list)
    valid_losses: list[float] = field(default_factory=list)
    atomic_numbers: list[int] = field(default_factory=list)
    atomic_energies: dict[int, float] = field(default_factory=dict)
    cutoff: float | None = None
    model_stage: str | None = None
    best_epoch: int | None = None
    errors: dict[str, dict[str, float]] = field(default_factory=dict)


def parse_log(text: str) -> MaceLog:
    """Return what the standard output ``text`` of ``mace_run_train`` says about the run."""
    log = MaceLog()
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if 'INFO: Started training' in line:
            log.started = True
        elif 'INFO: Training complete' in line:
            log.completed = True
        elif line.endswith('INFO: Done'):
            log.finished = True
        elif match := _EPOCH_LINE.search(line):
            if match.group(2) == DATA_HEAD:
                log.valid_losses.append(_number(match.group(3)))
                if match.group(1) is not None:
                    log.evaluated_epochs.append(int(match.group(1)))
        elif match := _NUMBERS_LINE.search(line):
            log.atomic_numbers = [int(number) for number in re.findall(r'(?<![\w.])\d+(?![\w(])', match.group(1))]
        elif match := _ENERGIES_LINE.search(line):
            log.atomic_energies = _atomic_energies(match.group(1))
        elif match := _CUTOFF_LINE.search(line):
            log.cutoff = _number(match.group(1))
        elif match := _LOADED_LINE.search(line):
            log.model_stage, log.best_epoch = match.group(1), int(match.group(2))
        elif match := _TABLE_TITLE.search(line):
            rows = _table_rows(lines[index + 1 :])
            log.errors.update(_name_rows(rows, test=match.group(1) == 'TEST'))
    return log


def _number(text: str) -> float:
    """Return ``text`` as a float, NaN if it is not a number."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def _atomic_energies(text: str) -> dict[int, float]:
    """Return the ``{atomic number: eV}`` of a logged dict such as ``{29: -0.1, 79: 0.02}``."""
    pairs = re.findall(r'(\d+):\s*([-+0-9.eEinfa]+)', text)
    return {int(number): _number(energy) for number, energy in pairs}


def _table_rows(lines: Sequence[str]) -> dict[str, dict[str, float]]:
    """Return the rows of the error table at the start of ``lines``: ``{row name: {error name: value}}``."""
    header: list[str] | None = None
    rows: dict[str, dict[str, float]] = {}
    for line in lines:
        if line.startswith('+'):
            continue
        if not line.startswith('|'):
            break
        cells = [cell.strip() for cell in line.strip().strip('|').split('|')]
        if header is None:
            header = cells
            continue
        values = {
            TABLE_COLUMNS[name]: _number(cell)
            for name, cell in zip(header[1:], cells[1:], strict=False)
            if name in TABLE_COLUMNS
        }
        rows[cells[0]] = values
    return rows


def _name_rows(rows: Mapping[str, dict[str, float]], test: bool) -> dict[str, dict[str, float]]:
    """Return the rows of the data head named ``train``, ``valid``, ``test`` or ``test_<config_type>``."""
    named = {}
    for name, values in rows.items():
        prefix, _, head = name.rpartition('_')
        if head != DATA_HEAD:
            continue
        if test:
            named['test' if prefix == 'Default' else f'test_{prefix}'] = values
        elif prefix in ('train', 'valid'):
            named[prefix] = values
    return named


def parse_results(text: str) -> list[dict[str, Any]]:
    """Return the records of a MACE results file (JSON lines); raise ``ValueError`` naming the first bad line."""
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exception:
            raise ValueError(f'line {number} is not JSON: {exception}') from None
        if not isinstance(record, dict) or record.get('mode') not in ('opt', 'eval'):
            raise ValueError(f'line {number} is not a MACE training or validation record')
        loss, epoch = record.get('loss'), record.get('epoch')
        if isinstance(loss, bool) or not isinstance(loss, int | float):
            raise ValueError(f'line {number} has no numeric `loss`')
        if not (isinstance(epoch, int) or (epoch is None and record['mode'] == 'eval')):
            raise ValueError(f'line {number} has no integer `epoch`')
        records.append(record)
    return records


def epoch_metrics(records: Iterable[Mapping[str, Any]], head: str = DATA_HEAD) -> dict[str, np.ndarray]:
    """Return one row per validation: ``epoch`` (epochs completed, 0 before training), losses and errors (meV).

    ``train_loss`` is the mean batch loss of the epoch (NaN for epoch 0). A run resumed from a checkpoint appends
    to the same file: its records replace those of the epochs it trains again.
    """
    rows: dict[int, dict[str, float]] = {}
    batch_losses: dict[int, list[float]] = {}
    batch_segment: dict[int, int] = {}
    segment = -1
    for record in records:
        epoch = record.get('epoch')
        if record['mode'] == 'eval' and record.get('head', head) == head:
            if epoch is None:
                segment += 1
                if segment:
                    continue
            rows[0 if epoch is None else epoch + 1] = _metrics_row(record)
        elif record['mode'] == 'opt':
            if batch_segment.get(epoch + 1) != segment:
                batch_losses[epoch + 1], batch_segment[epoch + 1] = [], segment
            batch_losses[epoch + 1].append(float(record['loss']))
    epochs = sorted(rows)
    columns = {'epoch': np.array(epochs, dtype=np.int64)}
    columns['train_loss'] = np.array(
        [np.mean(batch_losses[epoch]) if epoch in batch_losses else np.nan for epoch in epochs]
    )
    for name in ('valid_loss', *METRIC_COLUMNS):
        columns[name] = np.array([rows[epoch][name] for epoch in epochs], dtype=np.float64)
    return columns


def _metrics_row(record: Mapping[str, Any]) -> dict[str, float]:
    """Return the validation loss and the errors in meV of a MACE validation ``record`` (NaN where absent)."""
    row = {'valid_loss': float(record['loss'])}
    for name, key in METRIC_COLUMNS.items():
        value = record.get(key)
        row[name] = 1000.0 * value if isinstance(value, int | float) and not isinstance(value, bool) else np.nan
    return row


def loss_problem(records: Iterable[Mapping[str, Any]], log: MaceLog, head: str = DATA_HEAD) -> str | None:
    """Return why the loss of a run is unusable (NaN, infinite or diverged), or ``None`` when it is not."""
    valid_losses = []
    for record in records:
        loss = float(record['loss'])
        if not math.isfinite(loss):
            kind = 'training' if record['mode'] == 'opt' else 'validation'
            return f'the {kind} loss is {loss} in epoch {record.get("epoch")}'
        if record['mode'] == 'eval' and record.get('head', head) == head:
            valid_losses.append(loss)
    valid_losses = valid_losses or log.valid_losses
    bad = [loss for loss in valid_losses if not math.isfinite(loss)]
    if bad:
        return f'the validation loss is {bad[0]} in the log'
    if len(valid_losses) > 1 and valid_losses[-1] > DIVERGENCE_FACTOR * min(valid_losses):
        return f'the validation loss diverged to {valid_losses[-1]:.4g} (lowest {min(valid_losses):.4g})'
    return None


def out_of_memory(*texts: str) -> str | None:
    """Return the first line of ``texts`` that says the job ran out of memory, or ``None``."""
    for text in texts:
        for line in text.splitlines():
            if any(marker in line for marker in OUT_OF_MEMORY_MARKERS):
                return line.strip()
    return None


def last_exception(text: str) -> str | None:
    """Return the exception line of the last Python traceback in ``text`` (standard error), or ``None``."""
    if 'Traceback (most recent call last)' not in text:
        return None
    tail = text.rsplit('Traceback (most recent call last)', 1)[1]
    lines = [line for line in tail.splitlines()[1:] if line.strip() and not line.startswith((' ', '\t'))]
    return lines[-1].strip() if lines else 'a Python traceback without an exception line'


def final_errors(log: MaceLog, metrics: Mapping[str, np.ndarray] | None) -> dict[str, Any]:
    """Return the final errors: the rows of the last error tables, and the validation MAEs of the saved model.

    The saved model is the checkpoint of the epoch MACE loaded for the tables (``best_epoch``, counted as epochs
    completed); its validation record gives the MAEs that the RMSE tables do not print.
    """
    errors: dict[str, Any] = {name: dict(values) for name, values in log.errors.items()}
    if log.best_epoch is not None:
        errors['best_epoch'] = log.best_epoch + 1
        errors['model_stage'] = log.model_stage
    if 'valid' in errors and metrics is not None and log.best_epoch is not None:
        (rows,) = np.nonzero(metrics['epoch'] == log.best_epoch + 1)
        for name in ('energy_mae', 'forces_mae', 'stress_mae'):
            values = metrics[f'valid_{name}'][rows]
            if len(values) and np.isfinite(values[-1]):
                errors['valid'][name] = float(values[-1])
    errors['units'] = dict(UNITS)
    return errors
