"""``MetatrainParser`` on the files of a real ``mtt train`` run, and on copies damaged as failed runs leave them."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType

from aiida_trainspot.calculations.metatrain import CHECKPOINT_EPOCHS, CHECKPOINT_PATH, MetatrainCalculation
from aiida_trainspot.data import PESData
from aiida_trainspot.parsers.metatrain import MetatrainParser
from aiida_trainspot.training.metatrain_outputs import best_epoch, final_errors, read_metrics
from tests.training.conftest import copper_frames
from tests.training.test_metatrain_outputs import MTT_ERROR, real_metatrain_run

pytestmark = [pytest.mark.aiida, pytest.mark.real]

EXIT_CODES = MetatrainCalculation.exit_codes
SCHEDULER_WALLTIME = EXIT_CODES.ERROR_SCHEDULER_OUT_OF_WALLTIME.status
SCHEDULER_MEMORY = EXIT_CODES.ERROR_SCHEDULER_OUT_OF_MEMORY.status
OOM_MESSAGE = "RuntimeError: DefaultCPUAllocator: can't allocate memory: you tried to allocate 8589934592 bytes."


@pytest.fixture(scope='session')
def metatrain_run(tmp_path_factory) -> Path:
    """Return the folder of a real ``mtt train`` run of a tiny SOAP-BPNN (shared with the training tests)."""
    return real_metatrain_run(tmp_path_factory.getbasetemp())


@pytest.fixture
def run_copy(metatrain_run, tmp_path) -> dict:
    """Return a copy of the real run's files to damage: the retrieved ones by name, and the temporary folder."""
    (folder,) = metatrain_run.glob('outputs/*/*')
    relative = folder.relative_to(metatrain_run).as_posix()
    retrieved = {name: (metatrain_run / name).read_text() for name in ('mtt.out', 'mtt.err')}
    for name in ('train.csv', 'options_restart.yaml'):
        retrieved[f'{relative}/{name}'] = (folder / name).read_text()
    temporary = tmp_path / 'temporary'
    temporary.mkdir()
    for name in ('model.pt', 'model.ckpt'):
        shutil.copy(metatrain_run / name, temporary / name)
    shutil.copytree(metatrain_run / 'extensions', temporary / 'extensions')
    return {'retrieved': retrieved, 'temporary': temporary, 'csv': f'{relative}/train.csv'}


@pytest.fixture
def dataset():
    return PESData.from_frames(copper_frames()).store()


@pytest.fixture
def parse(aiida_localhost, dataset):
    """Return a function that parses a run's files as those of a ``MetatrainCalculation`` that ended as told."""

    def parse_files(files: dict, exit_status: int | None = None):
        node = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:trainspot.metatrain')
        node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
        node.set_option('output_filename', 'mtt.out')
        node.set_option('scheduler_stderr', '_scheduler-stderr.txt')
        node.base.links.add_incoming(dataset, link_type=LinkType.INPUT_CALC, link_label='dataset')
        node.store()
        if exit_status is not None:
            node.set_exit_status(exit_status)
        retrieved = orm.FolderData()
        for name, content in files['retrieved'].items():
            retrieved.base.repository.put_object_from_filelike(io.BytesIO(content.encode()), name)
        retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label='retrieved')
        retrieved.store()
        return MetatrainParser.parse_from_node(
            node, store_provenance=False, retrieved_temporary_folder=str(files['temporary'])
        )

    return parse_files


def test_finished_run(parse, run_copy, dataset):
    results, process = parse(run_copy)
    assert process.is_finished_ok, process.exit_message
    log, csv = run_copy['retrieved']['mtt.out'], run_copy['retrieved'][run_copy['csv']]
    metrics = results['metrics']
    for name, values in read_metrics(csv).columns.items():
        np.testing.assert_array_equal(metrics.get_array(name), values + 1 if name == 'epoch' else values)
    assert list(metrics.get_array('epoch')) == [1, 2, 3, 4, 5, 6], 'epochs completed, as for MACE'
    assert metrics.base.attributes.get('units')['valid_forces_rmse'] == 'meV/Å'
    errors = results['errors'].get_dict()
    assert {key: errors[key] for key in ('train', 'valid', 'test')} == final_errors(log)
    assert errors['units'] == {'energy': 'meV/atom', 'forces': 'meV/Å', 'virial': 'meV/atom'}
    assert errors['best_epoch'] == best_epoch(log) + 1
    model = results['model']
    assert (model.filename, model.architecture, model.species, model.cutoff) == ('model.pt', 'soap_bpnn', ['Cu'], 4.0)
    attributes = model.base.attributes
    assert (attributes.get('seed'), attributes.get('dtype'), attributes.get(CHECKPOINT_EPOCHS)) == (5, 'float64', 6)
    assert (attributes.get('training_set_uuid'), attributes.get('parent_model_uuid')) == (dataset.uuid, None)
    with model.base.repository.open(CHECKPOINT_PATH, 'rb') as handle:
        assert handle.read() == (run_copy['temporary'] / 'model.ckpt').read_bytes()
    assert 'libsphericart_torch.so' in {path.name for path in (run_copy['temporary'] / 'extensions').rglob('*')}
    assert attributes.get('has_extensions')


def kill_after_epoch(files: dict, epoch: int) -> None:
    """Make ``files`` those of a run killed right after it logged ``epoch``: no model, a cut log and ``train.csv``."""
    lines = files['retrieved']['mtt.out'].splitlines(keepends=True)
    end = next(index for index, line in enumerate(lines) if f'Epoch: {epoch:4d} |' in line)
    files['retrieved']['mtt.out'] = ''.join(lines[: end + 1])
    files['retrieved'][files['csv']] = ''.join(files['retrieved'][files['csv']].splitlines(keepends=True)[: epoch + 3])
    for path in files['temporary'].iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def set_training_loss(files: dict, value: str) -> None:
    """Put ``value`` as the training loss of the last epoch in ``train.csv``."""
    lines = files['retrieved'][files['csv']].splitlines()
    index = lines[0].split(',').index('training loss')
    cells = lines[-1].split(',')
    cells[index] = value
    files['retrieved'][files['csv']] = '\n'.join([*lines[:-1], ','.join(cells)]) + '\n'


def fail_with(files: dict, message: str) -> None:
    """Make ``files`` those of a run where ``mtt`` reported ``message`` as its error (after training)."""
    files['retrieved']['mtt.out'] += MTT_ERROR.format(message=message)


def damage(files: dict, case: str) -> int | None:
    """Damage ``files`` as in ``case`` (several at once for the precedence); return the scheduler's exit status."""
    status = {'walltime': SCHEDULER_WALLTIME, 'memory': SCHEDULER_MEMORY}
    scheduler = None
    for part in case.split('+'):
        if part in status:
            scheduler = status[part]
        elif part == 'killed':
            kill_after_epoch(files, 3)
        elif part == 'nan':
            set_training_loss(files, 'nan')
        elif part == 'diverging':
            set_training_loss(files, '1e6')
        elif part == 'oom':
            files['retrieved']['mtt.err'] += OOM_MESSAGE
            fail_with(files, OOM_MESSAGE)
        elif part == 'nan_error':
            fail_with(files, 'ValueError: cannot convert float NaN to integer')
        elif part == 'error':
            fail_with(files, 'ZeroDivisionError: float division by zero')
        elif part == 'no_stdout':
            del files['retrieved']['mtt.out']
        elif part == 'no_model':
            (files['temporary'] / 'model.pt').unlink()
        elif part == 'no_checkpoint':
            (files['temporary'] / 'model.ckpt').unlink()
        elif part == 'no_csv':
            del files['retrieved'][files['csv']]
        elif part == 'bad_csv':
            files['retrieved'][files['csv']] += '6,seven\n'
        elif part == 'no_options':
            del files['retrieved'][files['csv'].replace('train.csv', 'options_restart.yaml')]
    return scheduler


@pytest.mark.parametrize(
    ('case', 'label'),
    [
        ('memory', 'ERROR_OUT_OF_MEMORY'),
        ('oom', 'ERROR_OUT_OF_MEMORY'),
        ('oom+nan+walltime', 'ERROR_OUT_OF_MEMORY'),
        ('nan', 'ERROR_LOSS_NOT_FINITE'),
        ('diverging', 'ERROR_LOSS_NOT_FINITE'),
        ('nan_error', 'ERROR_LOSS_NOT_FINITE'),
        ('nan+walltime+no_model', 'ERROR_LOSS_NOT_FINITE'),
        ('walltime', 'ERROR_OUT_OF_WALLTIME'),
        ('walltime+error+no_stdout+no_model', 'ERROR_OUT_OF_WALLTIME'),
        ('killed', 'ERROR_OUT_OF_WALLTIME'),
        ('no_stdout', 'ERROR_OUTPUT_STDOUT_MISSING'),
        ('no_stdout+no_model', 'ERROR_OUTPUT_STDOUT_MISSING'),
        ('error', 'ERROR_TRAINER_FAILED'),
        ('error+no_model', 'ERROR_TRAINER_FAILED'),
        ('no_model', 'ERROR_MODEL_MISSING'),
        ('no_checkpoint', 'ERROR_MODEL_MISSING'),
        ('no_model+bad_csv', 'ERROR_MODEL_MISSING'),
        ('bad_csv', 'ERROR_OUTPUT_UNREADABLE'),
        ('no_csv', 'ERROR_OUTPUT_FILES_MISSING'),
        ('no_options', 'ERROR_OUTPUT_FILES_MISSING'),
    ],
)
def test_failures_and_their_precedence(parse, run_copy, case, label):
    """Each failure gets its exit code; several at once get the first in the documented order, never a later one."""
    scheduler = damage(run_copy, case)
    results, process = parse(run_copy, scheduler)
    assert process.exit_status == EXIT_CODES[label].status, process.exit_message
    assert 'model' not in results and 'errors' not in results


def test_unreadable_csv_with_a_model_is_not_a_success(parse, run_copy):
    damage(run_copy, 'bad_csv')
    _, process = parse(run_copy)
    assert process.exit_status == 310
    assert "line 9 holds a value that is not a number: '6,seven'" in process.exit_message


def test_walltime_keeps_the_metrics_so_far(parse, run_copy):
    kill_after_epoch(run_copy, 3)
    results, process = parse(run_copy)
    assert process.exit_status == 400
    assert 'training stopped after epoch 3 without finishing or reporting an error' in process.exit_message
    assert list(results['metrics'].get_array('epoch')) == [1, 2, 3, 4]


def test_exit_messages_name_the_cause(parse, run_copy):
    damage(run_copy, 'diverging')
    _, process = parse(run_copy)
    assert process.exit_message.startswith('The loss is not finite or diverges: the training loss diverges: 1e+06')
    _, process = parse({**run_copy, 'retrieved': {**run_copy['retrieved'], 'mtt.err': OOM_MESSAGE}}, None)
    assert process.exit_message == "Training ran out of memory: can't allocate memory"


def test_exit_statuses_are_unique():
    statuses = [code.status for code in EXIT_CODES.values()]
    assert len(statuses) == len(set(statuses))
