"""``MaceTrainParser`` on the files of a real ``mace_run_train`` run, and on copies damaged the way real runs fail.

The failures are injected into the real files: a log cut during training without a model (out of walltime), a NaN
loss, torch's out-of-memory traceback, another Python exception. The tests also fix which exit code wins when
several apply.
"""

import io
import json
import math
import shutil

import pytest
from aiida import orm
from aiida.common.links import LinkType

from aiida_trainspot.calculations.mace_train import MaceTrainCalculation
from aiida_trainspot.data import PESData
from aiida_trainspot.parsers.mace_train import MaceTrainParser
from aiida_trainspot.training.mace_outputs import epoch_metrics, final_errors, parse_log, parse_results
from tests.training.conftest import TINY_MACE, copper_frames, real_mace_run

pytestmark = [pytest.mark.aiida, pytest.mark.real]

EXIT_CODES = MaceTrainCalculation.exit_codes
RESULTS = 'results/mace_run-0_train.txt'
CPU_OUT_OF_MEMORY = (
    'Traceback (most recent call last):\n  File "/venv/bin/mace_run_train", line 8, in <module>\n'
    '    sys.exit(main())\nRuntimeError: [enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: '
    "can't allocate memory: you tried to allocate 8589934592 bytes. Error code 12 (Cannot allocate memory)\n"
)
KEY_ERROR = (
    'Traceback (most recent call last):\n  File "/venv/bin/mace_run_train", line 8, in <module>\n'
    "KeyError: 'Atomic number 79 not found in atomic_energies_dict for head Default, add E0s for this atomic number'\n"
)


@pytest.fixture(scope='module')
def real_files(tmp_path_factory):
    """Return the run folder and the files the job retrieves from a real run (tiny model, EMT copper, 8 epochs)."""
    folder = real_mace_run(tmp_path_factory.getbasetemp())
    return folder, {name: (folder / name).read_text() for name in ('mace.out', 'mace.err', RESULTS)}


def cut_log(text: str, marker: str) -> str:
    """Return ``text`` up to and including the first line holding ``marker``: a run killed there."""
    lines = text.splitlines(keepends=True)
    index = next(index for index, line in enumerate(lines) if marker in line)
    return ''.join(lines[: index + 1])


def cut_results(text: str, last_epoch: int) -> str:
    """Return the records of the results ``text`` up to the validation of MACE epoch ``last_epoch``."""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        record = json.loads(line)
        if record['mode'] == 'eval' and record['epoch'] == last_epoch:
            return ''.join(lines[: index + 1])
    raise AssertionError(f'no validation of epoch {last_epoch}')


def with_nan(text: str, epoch: int) -> str:
    """Return the results ``text`` with a NaN validation loss at MACE epoch ``epoch``."""
    records = [json.loads(line) for line in text.splitlines()]
    for record in records:
        if record['mode'] == 'eval' and record['epoch'] == epoch:
            record['loss'] = math.nan
    return ''.join(json.dumps(record) + '\n' for record in records)


@pytest.fixture
def parse(aiida_localhost, real_files, tmp_path):
    """Return a function that parses the real files, with ``changes`` (``None`` removes a file), as a finished job."""
    folder, files = real_files
    dataset = PESData.from_frames(copper_frames()).store()

    def parse_files(changes=None, model=True, scheduler_status=None):
        node = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:trainspot.mace_train')
        node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
        node.set_option('scheduler_stderr', '_scheduler-stderr.txt')
        inputs = {'dataset': dataset, 'seed': orm.Int(0).store(), 'hyperparameters': orm.Dict(TINY_MACE).store()}
        for label, value in inputs.items():
            node.base.links.add_incoming(value, link_type=LinkType.INPUT_CALC, link_label=label)
        node.store()
        if scheduler_status is not None:
            node.set_exit_status(scheduler_status)
        retrieved = orm.FolderData()
        for name, content in {**files, **(changes or {})}.items():
            if content is not None:
                data = content if isinstance(content, bytes) else content.encode()
                retrieved.base.repository.put_object_from_filelike(io.BytesIO(data), name)
        retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label='retrieved')
        retrieved.store()
        temporary = tmp_path / f'temporary_{node.pk}'
        temporary.mkdir()
        if model:
            shutil.copy(folder / 'mace.model', temporary / 'mace.model')
        return MaceTrainParser.parse_from_node(node, store_provenance=False, retrieved_temporary_folder=str(temporary))

    return parse_files


def test_complete_run(parse, real_files):
    _, files = real_files
    results, process = parse()
    assert process.is_finished_ok, process.exit_message
    log, records = parse_log(files['mace.out']), parse_results(files[RESULTS])
    model = results['model']
    assert (model.architecture, model.species, model.cutoff, model.filename) == ('mace', ['Cu'], 4.0, 'mace.model')
    assert (model.base.attributes.get('seed'), model.base.attributes.get('dtype')) == (0, 'float64')
    assert model.base.attributes.get('atomic_energies') == {'Cu': log.atomic_energies[29]}
    expected = epoch_metrics(records)
    assert sorted(results['metrics'].get_arraynames()) == sorted(expected)
    for name, values in expected.items():
        assert results['metrics'].get_array(name).tolist() == pytest.approx(values.tolist(), nan_ok=True)
    assert results['metrics'].base.attributes.get('units')['valid_forces_rmse'] == 'meV/Å'
    assert results['errors'].get_dict() == final_errors(log, expected)


def test_log_cut_during_training_is_out_of_walltime(parse, real_files):
    _, files = real_files
    changes = {'mace.out': cut_log(files['mace.out'], 'Epoch 3:'), RESULTS: cut_results(files[RESULTS], 3)}
    results, process = parse(changes, model=False)
    assert process.exit_status == EXIT_CODES.ERROR_OUT_OF_WALLTIME.status == 400
    assert 'after 4 epochs' in process.exit_message
    assert results['metrics'].get_array('epoch').tolist() == [0, 1, 2, 3, 4]
    assert 'model' not in results and 'errors' not in results


def test_scheduler_walltime_wins_over_the_missing_model(parse, real_files):
    """The reference plugin reported such a run as 'model missing': a restart handler never saw the walltime."""
    _, files = real_files
    changes = {'mace.out': cut_log(files['mace.out'], 'Started training'), RESULTS: None}
    _, process = parse(changes, model=False, scheduler_status=120)
    assert process.exit_status == EXIT_CODES.ERROR_OUT_OF_WALLTIME.status


def test_nan_loss(parse, real_files):
    _, files = real_files
    results, process = parse({RESULTS: with_nan(files[RESULTS], 3)})
    assert process.exit_status == EXIT_CODES.ERROR_LOSS_NOT_FINITE.status == 410
    assert process.exit_message.endswith('the validation loss is nan in epoch 3')
    assert 'model' in results, 'the model of the best epoch is kept'


def test_nan_loss_wins_over_walltime(parse, real_files):
    _, files = real_files
    changes = {'mace.out': cut_log(files['mace.out'], 'Epoch 4:'), RESULTS: with_nan(cut_results(files[RESULTS], 4), 3)}
    _, process = parse(changes, model=False, scheduler_status=120)
    assert process.exit_status == EXIT_CODES.ERROR_LOSS_NOT_FINITE.status


def test_diverged_loss(parse, real_files):
    _, files = real_files
    diverged = json.dumps({'mode': 'eval', 'epoch': 8, 'head': 'Default', 'loss': 1e9})
    _, process = parse({RESULTS: files[RESULTS] + diverged + '\n'})
    assert process.exit_status == EXIT_CODES.ERROR_LOSS_NOT_FINITE.status
    assert 'the validation loss diverged to 1e+09' in process.exit_message


def test_out_of_memory_wins_over_nan_and_walltime(parse, real_files):
    _, files = real_files
    changes = {
        'mace.out': cut_log(files['mace.out'], 'Epoch 2:'),
        'mace.err': files['mace.err'] + CPU_OUT_OF_MEMORY,
        RESULTS: with_nan(cut_results(files[RESULTS], 2), 1),
    }
    _, process = parse(changes, model=False, scheduler_status=120)
    assert process.exit_status == EXIT_CODES.ERROR_OUT_OF_MEMORY.status == 420
    assert "DefaultCPUAllocator: can't allocate memory" in process.exit_message


def test_scheduler_out_of_memory_without_output(parse):
    _, process = parse({'mace.out': None, 'mace.err': None, RESULTS: None}, model=False, scheduler_status=110)
    assert process.exit_status == EXIT_CODES.ERROR_OUT_OF_MEMORY.status
    _, process = parse({'mace.out': None}, model=False)
    assert process.exit_status == EXIT_CODES.ERROR_OUTPUT_STDOUT_MISSING.status == 300


def test_other_exception_is_reported(parse, real_files):
    _, files = real_files
    changes = {'mace.out': cut_log(files['mace.out'], 'Atomic Numbers used'), 'mace.err': KEY_ERROR, RESULTS: None}
    _, process = parse(changes, model=False)
    assert process.exit_status == EXIT_CODES.ERROR_OUTPUT_STDOUT_INCOMPLETE.status == 312
    assert process.exit_message.endswith(
        "KeyError: 'Atomic number 79 not found in atomic_energies_dict for head "
        "Default, add E0s for this atomic number'"
    )


def test_missing_or_bad_results_and_model(parse, real_files):
    _, files = real_files
    results, process = parse({RESULTS: None})
    assert process.exit_status == EXIT_CODES.ERROR_OUTPUT_METRICS_MISSING.status == 302
    assert 'model' in results and 'metrics' not in results
    _, process = parse({RESULTS: files[RESULTS] + '{"mode": "eval", "loss"\n'})
    assert process.exit_status == EXIT_CODES.ERROR_OUTPUT_UNREADABLE.status == 310
    assert 'results/mace_run-0_train.txt' in process.exit_message
    _, process = parse(model=False)
    assert process.exit_status == EXIT_CODES.ERROR_MODEL_MISSING.status == 430
    _, process = parse({'mace.out': b'\xff\xfe not text'})
    assert process.exit_status == EXIT_CODES.ERROR_OUTPUT_UNREADABLE.status
