"""Reading what ``mtt train`` wrote (pure functions), on the files of a real tiny SOAP-BPNN run on EMT copper."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from aiida_trainspot.dataset import METATRAIN_KEYS, FrameBatch, write_extxyz
from aiida_trainspot.dataset.batch import SPLIT_CODES
from aiida_trainspot.training.metatrain import model_cutoff, options_yaml, render_options, validate_hyperparameters
from aiida_trainspot.training.metatrain_outputs import (
    DIVERGENCE_FACTOR,
    FAILURES,
    LOSS_LIMIT,
    Metrics,
    RunEvidence,
    atomic_types,
    best_epoch,
    diagnose,
    error_reason,
    final_error_units,
    final_errors,
    loss_problem,
    read_metrics,
    read_resolved_options,
    resume_epoch,
)
from tests.training.conftest import copper_frames

pytestmark = pytest.mark.real

TINY_SOAP_BPNN = {
    'architecture': 'soap_bpnn',
    'base_precision': 64,
    'model': {
        'soap': {'max_angular': 2, 'max_radial': 3, 'cutoff': {'radius': 4.0}},
        'bpnn': {'num_hidden_layers': 1, 'num_neurons_per_layer': 16},
    },
    'training': {'num_epochs': 6, 'batch_size': 4, 'learning_rate': 0.01, 'checkpoint_interval': 2},
}
"""A SOAP-BPNN small enough to train in seconds; 6 epochs with a checkpoint every 2."""
EPOCH_LINE = re.compile(r'Epoch:\s+(\d+) \|.*validation forces RMSE:\s+(\S+) meV/A')
MTT_ERROR = (
    '[2026-01-01 00:00:00][ERROR] - If the error message below is unclear, please help us improve it by opening an '
    'issue at https://github.com/metatensor/metatrain/issues. When opening the issue, please include the full '
    "traceback log from 'error.log'. Thank you!\n\n{message}\n\nThe error above most likely originates from an "
    'architecture.\n'
)
"""How ``mtt`` reports an error (its ``__main__``), around the message of the exception."""


def real_metatrain_run(base: Path) -> Path:
    """Return the folder of one real ``mtt train`` on :func:`copper_frames`, run once per test session under ``base``.

    The files are those a ``MetatrainCalculation`` writes: the splits by our extended-XYZ writer, our options.
    """
    folder = base / 'metatrain_copper_run'
    if (folder / 'finished').exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    batch = FrameBatch.from_frames(copper_frames())
    files = {split: f'{split}.xyz' for split in ('train', 'valid', 'test')}
    for split, filename in files.items():
        with open(folder / filename, 'w', encoding='utf8') as handle:
            write_extxyz([batch.take(np.flatnonzero(batch.split == SPLIT_CODES[split]))], handle, METATRAIN_KEYS)
    options = render_options(validate_hyperparameters(TINY_SOAP_BPNN), seed=5, files=files, stress=True)
    (folder / 'options.yaml').write_text(options_yaml(options))
    with open(folder / 'mtt.out', 'w') as stdout, open(folder / 'mtt.err', 'w') as stderr:
        process = subprocess.run(
            [shutil.which('mtt'), 'train', 'options.yaml', '-o', 'model.pt', '-e', 'extensions'],
            cwd=folder,
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, 'OMP_NUM_THREADS': '1'},
            check=False,
        )
    assert process.returncode == 0, (folder / 'mtt.err').read_text()[-2000:]
    (folder / 'finished').touch()
    return folder


@pytest.fixture(scope='session')
def metatrain_run(tmp_path_factory) -> Path:
    """Return the folder of a real ``mtt train`` run of a tiny SOAP-BPNN on the EMT copper frames."""
    return real_metatrain_run(tmp_path_factory.getbasetemp())


@pytest.fixture
def run_texts(metatrain_run) -> dict[str, str]:
    """Return the log, ``train.csv`` and ``options_restart.yaml`` of the real run."""
    (run_folder,) = metatrain_run.glob('outputs/*/*')
    return {
        'log': (metatrain_run / 'mtt.out').read_text(),
        'csv': (run_folder / 'train.csv').read_text(),
        'options': (run_folder / 'options_restart.yaml').read_text(),
    }


def test_metrics_have_one_row_per_epoch(run_texts):
    metrics = read_metrics(run_texts['csv'])
    assert list(metrics.epochs) == list(range(6))
    for name in ('train_loss', 'valid_loss', 'valid_energy_rmse', 'valid_forces_rmse'):
        assert metrics.columns[name].shape == (6,)
    assert metrics.units['valid_forces_rmse'] == 'meV/Å'
    assert metrics.units['valid_energy_rmse'] == 'meV/atom'
    assert metrics.units['train_virial_rmse'] == 'meV/atom', 'metatrain reports the stress as a virial'
    logged = {int(epoch): float(value) for epoch, value in EPOCH_LINE.findall(run_texts['log'])}
    assert logged == dict(zip(metrics.epochs.tolist(), metrics.columns['valid_forces_rmse'].tolist(), strict=True))


def test_final_errors_are_those_of_the_best_epoch(run_texts):
    """The exported model is the epoch with the lowest product of validation RMSEs; the final table repeats them."""
    errors = final_errors(run_texts['log'])
    assert set(errors) == {'train', 'valid', 'test'}
    for values in errors.values():
        assert set(values) == {
            f'{quantity}_{kind}' for quantity in ('energy', 'forces', 'virial') for kind in ('rmse', 'mae')
        }
    columns = read_metrics(run_texts['csv']).columns
    names = ('energy_rmse', 'forces_rmse', 'virial_rmse')
    best = int(np.argmin(np.prod([columns[f'valid_{name}'] for name in names], axis=0)))
    assert best_epoch(run_texts['log']) == best
    for name in names:
        assert errors['valid'][name] == pytest.approx(columns[f'valid_{name}'][best], rel=1e-4)
    assert final_error_units(run_texts['log']) == {'energy': 'meV/atom', 'forces': 'meV/Å', 'virial': 'meV/atom'}


def test_resolved_options_and_atomic_types(run_texts):
    options = read_resolved_options(run_texts['options'])
    assert (options['seed'], options['base_precision']) == (5, 64)
    assert model_cutoff('soap_bpnn', options['architecture']['model']) == 4.0
    assert options['architecture']['training']['log_interval'] == 1
    assert atomic_types(run_texts['log']) == [29]
    with pytest.raises(ValueError, match='no `architecture` section'):
        read_resolved_options('seed: 1\n')


def test_a_finished_run_has_no_failure(run_texts):
    evidence = RunEvidence(log=run_texts['log'], metrics=read_metrics(run_texts['csv']))
    assert diagnose(evidence) is None
    assert error_reason(run_texts['log']) is None


def killed_after(run_texts: dict[str, str], epoch: int) -> tuple[str, Metrics]:
    """Return the log and metrics of the real run as if it had been killed right after logging ``epoch``."""
    lines = run_texts['log'].splitlines(keepends=True)
    end = next(index for index, line in enumerate(lines) if f'Epoch: {epoch:4d} |' in line)
    csv_lines = run_texts['csv'].splitlines(keepends=True)[: epoch + 3]
    return ''.join(lines[: end + 1]), read_metrics(''.join(csv_lines))


def with_value(csv: str, row: int, column: str, value: str) -> str:
    """Return the text of ``train.csv`` with ``value`` in ``column`` of data ``row``."""
    lines = csv.splitlines()
    index = lines[0].split(',').index(column)
    cells = lines[2:][row].split(',')
    cells[index] = value
    lines[2 + (row % (len(lines) - 2))] = ','.join(cells)
    return '\n'.join(lines) + '\n'


def test_precedence_of_failures(run_texts):
    """Memory before loss before walltime before a missing log before other errors, whatever else is wrong."""
    log, metrics = killed_after(run_texts, 3)
    nan = read_metrics(with_value(run_texts['csv'], -1, 'training loss', 'nan'))
    oom = 'RuntimeError: DefaultCPUAllocator: not enough memory: you tried to allocate 10 GB'
    assert diagnose(RunEvidence(log, metrics=metrics))[0] == 'ERROR_OUT_OF_WALLTIME'
    assert diagnose(RunEvidence(log, metrics=nan, scheduler_out_of_walltime=True))[0] == 'ERROR_LOSS_NOT_FINITE'
    assert diagnose(RunEvidence(log, stderr=oom, metrics=nan))[0] == 'ERROR_OUT_OF_MEMORY'
    assert diagnose(RunEvidence(None, metrics=metrics, scheduler_out_of_walltime=True))[0] == 'ERROR_OUT_OF_WALLTIME'
    assert diagnose(RunEvidence(None, metrics=metrics))[0] == 'ERROR_OUTPUT_STDOUT_MISSING'
    assert diagnose(RunEvidence(None, scheduler_out_of_memory=True))[0] == 'ERROR_OUT_OF_MEMORY'
    failed = run_texts['log'] + MTT_ERROR.format(message='ZeroDivisionError: float division by zero')
    assert diagnose(RunEvidence(failed)) == ('ERROR_TRAINER_FAILED', 'ZeroDivisionError: float division by zero')
    assert FAILURES == tuple(dict.fromkeys(FAILURES)), 'each failure once'


def test_interruptions_with_and_without_checkpoint(run_texts):
    log, metrics = killed_after(run_texts, 0)
    label, reason = diagnose(RunEvidence(log, metrics=metrics))
    assert (label, reason) == (
        'ERROR_OUT_OF_WALLTIME',
        'training stopped after epoch 0 without finishing or reporting an error',
    )
    before = run_texts['log'].split('Starting training')[0] + 'Starting training\n'
    label, reason = diagnose(RunEvidence(before, stderr='Killed\n', metrics=Metrics()))
    assert label == 'ERROR_TRAINER_FAILED'
    assert reason.endswith('before the end of its first epoch without reporting an error; last message: Killed')
    assert diagnose(RunEvidence(before, metrics=Metrics(), resumed=True))[0] == 'ERROR_OUT_OF_WALLTIME'


def test_errors_of_mtt_are_read(run_texts):
    nan = run_texts['log'] + MTT_ERROR.format(message='ValueError: cannot convert float NaN to integer')
    assert diagnose(RunEvidence(nan)) == (
        'ERROR_LOSS_NOT_FINITE', 'mtt stopped with: ValueError: cannot convert float NaN to integer'
    )  # fmt: skip
    memory = MTT_ERROR.format(message='OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB')
    assert diagnose(RunEvidence(memory)) == ('ERROR_OUT_OF_MEMORY', 'OutOfMemoryError')


def test_loss_problems():
    def metrics(training, validation=None):
        training = np.asarray(training, dtype=float)
        validation = training if validation is None else np.asarray(validation, dtype=float)
        columns = {'epoch': np.arange(len(training)), 'train_loss': training, 'valid_loss': validation}
        return Metrics(columns=columns)

    assert loss_problem(metrics([10.0, 5.0, 2.0])) is None
    assert loss_problem(metrics([10.0, np.nan, 2.0])) == 'the training loss is nan at epoch 1'
    assert loss_problem(metrics([10.0, 5.0], [1.0, np.inf])) == 'the validation loss is inf at epoch 1'
    assert loss_problem(metrics([10 * LOSS_LIMIT, 5.0])).startswith('the training loss is 1e+11 at epoch 0')
    diverging = loss_problem(metrics([10.0, 1.0, 2 * DIVERGENCE_FACTOR]))
    assert diverging.startswith('the training loss diverges: 200 at epoch 2')
    assert loss_problem(metrics([10.0, 1.0, 0.5 * DIVERGENCE_FACTOR])) is None, 'a rise below the factor is noise'


@pytest.mark.parametrize(
    ('epochs', 'interval', 'expected'),
    [
        (range(6), 2, 4),
        (range(6), 25, 0),
        (range(5, 10), 2, 8),
        (range(5, 8), 25, None),
        ([], 2, None),
    ],
)
def test_resume_epoch(epochs, interval, expected):
    """The newest multiple of the checkpoint interval among the epochs the run logged."""
    assert resume_epoch(list(epochs), interval) == expected


def test_unreadable_metrics():
    assert len(read_metrics('').epochs) == 0, 'metatrain creates the file before the first epoch'
    with pytest.raises(ValueError, match='no units row'):
        read_metrics('Epoch,training loss\n')
    with pytest.raises(ValueError, match="line 3 holds a value that is not a number: '0,abc'"):
        read_metrics('Epoch,training loss\n,\n0,abc\n')
    with pytest.raises(ValueError, match='line 3 has 1 values for 2 columns'):
        read_metrics('Epoch,training loss\n,\n0\n')
