import pytest

from aiida_trainspot.data import PESData, PotentialData

pytestmark = pytest.mark.aiida


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / 'carbon.model'
    path.write_bytes(b'model weights')
    return path


def test_potential_keeps_file_and_metadata(tmp_path, model_file, labelled_frames):
    training_set = PESData.from_frames(labelled_frames).store()
    (tmp_path / 'ext').mkdir()
    (tmp_path / 'ext' / 'lib.so').write_bytes(b'extension')
    parent = PotentialData(model_file, architecture='mace', species=['C'], cutoff=5.0, seed=1).store()
    node = PotentialData(
        model_file,
        architecture='pet',
        species=['C'],
        cutoff=4.5,
        seed=2,
        dtype='float32',
        training_set_uuid=training_set.uuid,
        parent_model_uuid=parent.uuid,
        extensions=tmp_path / 'ext',
    ).store()
    assert (node.architecture, node.species, node.cutoff, node.filename) == ('pet', ['C'], 4.5, 'carbon.model')
    assert node.base.attributes.get('parent_model_uuid') == parent.uuid
    with node.model_path() as path:
        assert path.read_bytes() == b'model weights'
        assert (path.parent.parent / 'extensions' / 'lib.so').read_bytes() == b'extension'


@pytest.mark.parametrize(
    ('kwargs', 'message'),
    [
        ({'architecture': None}, '`architecture`'),
        ({'species': []}, '`species`'),
        ({'species': ['Xx']}, '`species`'),
        ({'cutoff': 0}, '`cutoff`'),
        ({'dtype': 'float16'}, '`dtype`'),
    ],
)
def test_bad_metadata_is_rejected(model_file, kwargs, message):
    arguments = {'architecture': 'mace', 'species': ['C'], 'cutoff': 5.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        PotentialData(model_file, **arguments)


def test_missing_file_is_rejected(tmp_path):
    with pytest.raises(ValueError, match='is not a file'):
        PotentialData(tmp_path / 'none.model', architecture='mace', species=['C'], cutoff=5.0)
