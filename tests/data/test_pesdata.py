import numpy as np
import pytest
from aiida.orm import load_node

from aiida_trainspot.data import PESData
from aiida_trainspot.dataset import MACE_KEYS, CorruptDatasetError, Frame

pytestmark = pytest.mark.aiida


def test_attributes_summarise_the_dataset(labelled_frames):
    labelled_frames[0].energy = None
    labelled_frames[0].failure_reason = 'SCF not converged'
    node = PESData.from_frames(labelled_frames).store()
    attributes = node.base.attributes.all
    assert attributes['num_frames'] == len(node) == 12
    assert attributes['num_atoms'] == sum(frame.natoms for frame in labelled_frames)
    assert (attributes['num_labelled'], attributes['num_failed']) == (11, 1)
    assert attributes['split_counts'] == {'train': 3, 'valid': 3, 'test': 3, 'unassigned': 3}
    assert attributes['species'] == ['C'] and attributes['schema_version'] == 1
    node.verify()


def test_stored_node_reads_back_and_filters(labelled_frames):
    node = PESData.from_frames(labelled_frames).store()
    loaded = load_node(node.pk)
    frames = list(loaded.iter_frames(query={'split': 'valid'}))
    assert [frame.info['index'] for frame in frames] == [1, 5, 9]
    np.testing.assert_array_equal(loaded.get_frame(5).forces, labelled_frames[5].forces)
    with pytest.raises(IndexError):
        loaded.get_frame(12)


def test_bad_frame_stores_nothing(labelled_frames):
    labelled_frames[4].forces = labelled_frames[4].forces[:1]
    with pytest.raises(ValueError, match='frame 4: field `forces`'):
        PESData.from_frames(labelled_frames)


def test_clone_reads_identically(labelled_frames):
    node = PESData.from_frames(labelled_frames).store()
    clone = node.clone().store()
    assert clone.uuid != node.uuid
    assert clone.checksum == node.checksum
    clone.verify()
    assert [frame.energy for frame in clone.iter_frames()] == [frame.energy for frame in labelled_frames]


def test_archive_round_trip_into_another_profile(
    tmp_path, labelled_frames, aiida_config_factory, aiida_profile_factory
):
    from aiida.tools.archive import create_archive, import_archive

    node = PESData.from_frames(labelled_frames).store()
    uuid, checksum = node.uuid, node.checksum
    create_archive([node], filename=tmp_path / 'export.aiida')
    with aiida_config_factory(tmp_path / 'other') as config, aiida_profile_factory(config, name='other'):
        import_archive(tmp_path / 'export.aiida')
        imported = load_node(uuid)
        assert imported.checksum == checksum
        imported.verify()
        energies = [frame.energy for frame in imported.iter_frames()]
    assert energies == [frame.energy for frame in labelled_frames]


def test_corrupted_repository_file_names_the_node(labelled_frames):
    node = PESData.from_frames(labelled_frames).store()
    key = node.base.repository.metadata['o'][PESData.FILENAME]['k']
    container = node.backend.get_repository()._container
    path = container._get_loose_path_from_hashkey(key)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CorruptDatasetError, match=f'PESData<{node.pk}>'):
        list(load_node(node.pk).iter_frames())


def test_extxyz_export_and_import(tmp_path, labelled_frames):
    node = PESData.from_frames(labelled_frames)
    assert node.write_extxyz(tmp_path / 'train.xyz', query={'split': 'train'}) == 3
    back = PESData.from_extxyz(tmp_path / 'train.xyz', keys=MACE_KEYS)
    assert [frame.energy for frame in back.iter_frames()] == pytest.approx(
        [labelled_frames[i].energy for i in (0, 4, 8)]
    )
    assert {frame.split for frame in back.iter_frames()} == {'train'}


def test_unlabelled_frame_from_ase():
    from ase.build import molecule

    node = PESData.from_ase([molecule('CH4')])
    frame: Frame = next(node.iter_frames())
    assert not frame.labelled and node.species == ['H', 'C']
