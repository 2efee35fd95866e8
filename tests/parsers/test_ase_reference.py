"""``AseReferenceParser`` on files the runner wrote for real, and on damaged or missing copies of them."""

import io
import json
from pathlib import Path

import pytest
from aiida import orm
from aiida.common.links import LinkType
from ase.build import bulk

from aiida_trainspot.calculations.ase_reference import AseReferenceCalculation
from aiida_trainspot.data import PESData
from aiida_trainspot.parsers.ase_reference import AseReferenceParser
from aiida_trainspot.runners.ase_label import main

pytestmark = pytest.mark.aiida

EXIT_CODES = AseReferenceCalculation.exit_codes


@pytest.fixture
def dataset():
    return PESData.from_ase([bulk('Cu', 'fcc', a=3.61), bulk('Cu', 'fcc', a=3.7)]).store()


@pytest.fixture
def runner_output(dataset, tmp_path):
    """Return a function that runs the runner with EMT on the first ``frames`` frames of ``dataset``."""

    def run(frames: int | None = None) -> Path:
        folder = tmp_path / f'run_{frames}'
        folder.mkdir()
        subset = PESData.from_ase(dataset.to_ase()[:frames])
        with subset.base.repository.open(PESData.FILENAME, 'rb') as source:
            (folder / 'dataset.h5').write_bytes(source.read())
        (folder / 'calculator.json').write_text(json.dumps({'name': 'emt'}))
        files = {'--input': 'dataset.h5', '--calculator': 'calculator.json', '--output': 'labelled.h5'}
        arguments = [item for flag, name in files.items() for item in (flag, str(folder / name))]
        assert main([*arguments, '--results', str(folder / 'results.json')]) == 0
        return folder

    return run


@pytest.fixture
def parse(aiida_localhost, dataset):
    """Return a function that parses ``retrieved`` files and a temporary folder as those of a finished job."""

    def parse_files(retrieved_files: dict[str, bytes], temporary: Path | None):
        node = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:trainspot.ase_reference')
        node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
        node.base.links.add_incoming(dataset, link_type=LinkType.INPUT_CALC, link_label='dataset')
        node.store()
        retrieved = orm.FolderData()
        for name, content in retrieved_files.items():
            retrieved.base.repository.put_object_from_filelike(io.BytesIO(content), name)
        retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label='retrieved')
        retrieved.store()
        folder = None if temporary is None else str(temporary)
        return AseReferenceParser.parse_from_node(node, store_provenance=False, retrieved_temporary_folder=folder)

    return parse_files


def test_runner_output(parse, runner_output, dataset):
    folder = runner_output()
    results, process = parse({'results.json': (folder / 'results.json').read_bytes()}, folder)
    assert process.is_finished_ok
    assert len(results['labelled_dataset']) == len(dataset)
    assert results['labelled_dataset'].base.attributes.get('num_labelled') == 2
    assert results['output_parameters'].get_dict() == json.loads((folder / 'results.json').read_text())


def test_truncated_dataset_file(parse, runner_output):
    folder = runner_output()
    content = (folder / 'labelled.h5').read_bytes()
    (folder / 'labelled.h5').write_bytes(content[: len(content) // 2])
    results, process = parse({'results.json': (folder / 'results.json').read_bytes()}, folder)
    assert process.exit_status == EXIT_CODES.ERROR_OUTPUT_UNREADABLE.status == 310
    assert process.exit_message.startswith('`labelled.h5` cannot be read:')
    assert results == {}


def test_dataset_with_missing_frames(parse, runner_output):
    folder = runner_output(frames=1)
    _, process = parse({'results.json': (folder / 'results.json').read_bytes()}, folder)
    assert process.exit_status == 310
    assert process.exit_message == '`labelled.h5` cannot be read: it holds 1 frames, the input dataset 2'


def test_missing_dataset_file_reports_the_runner_error(parse, tmp_path):
    error = b'trainspot-ase-label: error: --input dataset.h5: the dataset file cannot be opened as HDF5\n'
    _, process = parse({'ase_label.err': error}, tmp_path)
    assert process.exit_status == EXIT_CODES.ERROR_OUTPUT_MISSING.status == 300
    assert process.exit_message == f'`labelled.h5` was not written or retrieved: {error.decode().strip()}'
    _, process = parse({}, None)
    assert process.exit_message == '`labelled.h5` was not written or retrieved: the runner printed no error'


def test_missing_or_broken_results(parse, runner_output):
    folder = runner_output()
    _, process = parse({}, folder)
    assert (process.exit_status, process.exit_message) == (
        300,
        '`results.json` was not written or retrieved: the runner printed no error',
    )
    _, process = parse({'results.json': b'{"num_frames": 2'}, folder)
    assert process.exit_status == 310
    assert process.exit_message.startswith('`results.json` cannot be read:')
