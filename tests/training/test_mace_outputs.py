"""The parsing of what ``mace_run_train`` wrote, on the files of a real run (tiny model, EMT copper, 8 epochs)."""

import json
import math

import numpy as np
import pytest

from aiida_trainspot.training.mace_outputs import (
    DIVERGENCE_FACTOR,
    epoch_metrics,
    final_errors,
    last_exception,
    loss_problem,
    out_of_memory,
    parse_log,
    parse_results,
)

pytestmark = pytest.mark.real

CPU_OUT_OF_MEMORY = (
    'Traceback (most recent call last):\n  File "/venv/bin/mace_run_train", line 8, in <module>\n'
    '    sys.exit(main())\nRuntimeError: [enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: '
    "can't allocate memory: you tried to allocate 8589934592 bytes. Error code 12 (Cannot allocate memory)\n"
)


@pytest.fixture(scope='module')
def run(mace_run_folder):
    """Return the log, the results records and the standard error of the real run."""
    log = parse_log((mace_run_folder / 'mace.out').read_text())
    records = parse_results((mace_run_folder / 'results' / 'mace_run-0_train.txt').read_text())
    return log, records, (mace_run_folder / 'mace.err').read_text()


def test_log_of_a_complete_run(run):
    log, records, _ = run
    assert (log.started, log.completed, log.finished) == (True, True, True)
    assert log.evaluated_epochs == list(range(8))
    assert (log.atomic_numbers, log.cutoff) == ([29], 4.0)
    assert list(log.atomic_energies) == [29]
    assert log.model_stage == 'one'
    valid_losses = [record['loss'] for record in records if record['mode'] == 'eval']
    assert log.best_epoch == int(np.argmin(valid_losses[1:])), 'MACE keeps the checkpoint of the lowest loss'
    np.testing.assert_allclose(log.valid_losses, valid_losses, atol=5e-9, err_msg='the log prints 8 decimals')
    assert set(log.errors) == {'train', 'valid', 'test'}
    assert set(log.errors['test']) == {'energy_rmse', 'forces_rmse', 'forces_relative_rmse', 'stress_rmse'}


def test_epoch_metrics(run):
    _, records, _ = run
    metrics = epoch_metrics(records)
    np.testing.assert_array_equal(metrics['epoch'], np.arange(9))
    assert math.isnan(metrics['train_loss'][0]), 'epoch 0 is the validation before training'
    epoch_two = [record['loss'] for record in records if record['mode'] == 'opt' and record['epoch'] == 1]
    assert len(epoch_two) == 5, '26 frames in batches of 5, the incomplete batch dropped'
    assert metrics['train_loss'][2] == pytest.approx(np.mean(epoch_two), rel=1e-12)
    first_validation = next(record for record in records if record['mode'] == 'eval' and record['epoch'] == 0)
    assert metrics['valid_forces_rmse'][1] == pytest.approx(1000 * first_validation['rmse_f'], rel=1e-12)
    assert metrics['valid_stress_mae'][1] == pytest.approx(1000 * first_validation['mae_stress'], rel=1e-12)
    assert metrics['valid_forces_rmse'][-1] < metrics['valid_forces_rmse'][1], 'training lowers the force error'
    assert metrics['valid_forces_mae'][-1] < metrics['valid_forces_rmse'][-1]


def test_final_errors_are_those_of_the_saved_epoch(run):
    log, records, _ = run
    metrics = epoch_metrics(records)
    errors = final_errors(log, metrics)
    best = errors['best_epoch']
    assert best == log.best_epoch + 1
    for name in ('energy', 'forces', 'stress'):
        assert errors['valid'][f'{name}_rmse'] == pytest.approx(metrics[f'valid_{name}_rmse'][best], abs=0.05)
        assert errors['valid'][f'{name}_mae'] == metrics[f'valid_{name}_mae'][best]
    assert 'forces_mae' not in errors['train'], 'MACE prints RMSE tables: no MAE for the training set'
    assert errors['units'] == {'energy': 'meV/atom', 'forces': 'meV/Å', 'stress': 'meV/Å³', 'forces_relative': '%'}


def test_a_resumed_run_replaces_the_epochs_it_trains_again(run):
    """A run resumed from the checkpoint of epoch 4 appends its records: epochs 5 to 8 come from the second part."""
    _, records, _ = run
    resumed = [dict(record, loss=record['loss'] / 2) for record in records if record.get('epoch') in (None, 4, 5)]
    metrics = epoch_metrics([*records, *resumed])
    np.testing.assert_array_equal(metrics['epoch'], np.arange(9))
    original = epoch_metrics(records)
    assert metrics['valid_loss'][0] == original['valid_loss'][0], 'the first validation is that of the first part'
    np.testing.assert_allclose(metrics['valid_loss'][5:7], original['valid_loss'][5:7] / 2)
    np.testing.assert_allclose(metrics['train_loss'][5:7], original['train_loss'][5:7] / 2)
    np.testing.assert_array_equal(metrics['valid_loss'][7:], original['valid_loss'][7:])


def test_loss_problems(run):
    log, records, _ = run
    assert loss_problem(records, log) is None
    nan = [
        dict(record, loss=math.nan) if record['mode'] == 'eval' and record['epoch'] == 3 else record
        for record in records
    ]
    assert loss_problem(nan, log) == 'the validation loss is nan in epoch 3'
    lowest = min(record['loss'] for record in records if record['mode'] == 'eval')
    diverged = [*records, {'mode': 'eval', 'epoch': 8, 'head': 'Default', 'loss': 2 * DIVERGENCE_FACTOR * lowest}]
    assert loss_problem(diverged, log).startswith('the validation loss diverged to')
    written = json.loads(json.dumps({'mode': 'opt', 'epoch': 2, 'loss': math.inf}))
    assert loss_problem([*records, written], log) == 'the training loss is inf in epoch 2'


def test_out_of_memory_and_exceptions(run):
    _, _, stderr = run
    assert 'UserWarning' in stderr, 'MACE warns on standard error even when all goes well'
    assert out_of_memory(stderr) is None
    assert last_exception(stderr) is None
    crashed = stderr + CPU_OUT_OF_MEMORY
    assert "DefaultCPUAllocator: can't allocate memory" in out_of_memory(crashed)
    assert last_exception(crashed).startswith('RuntimeError: [enforce fail at alloc_cpu.cpp:117]')
    assert out_of_memory('slurmstepd: error: Detected 1 oom-kill event(s) in StepId=12.batch') is not None


def test_bad_results_line_is_named(run):
    with pytest.raises(ValueError, match='line 2 is not JSON'):
        parse_results('{"mode": "opt", "epoch": 0, "loss": 1.0}\n{"mode": "eval", "loss": 1.0\n')
    with pytest.raises(ValueError, match='line 1 is not a MACE training or validation record'):
        parse_results('[1, 2]\n')
    with pytest.raises(ValueError, match='line 1 has no numeric `loss`'):
        parse_results('{"mode": "eval", "epoch": 3, "loss": null}\n')
    with pytest.raises(ValueError, match='line 1 has no integer `epoch`'):
        parse_results('{"mode": "opt", "loss": 1.0}\n')
