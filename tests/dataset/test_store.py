import numpy as np
import pytest

from aiida_trainspot.dataset import CorruptDatasetError, DatasetReader, DatasetWriter, Frame

pytestmark = pytest.mark.kernel


def write(path, frames, block_frames=5):
    with DatasetWriter(path, block_frames=block_frames) as writer:
        writer.extend(frames)
    return path


def assert_same_frame(actual: Frame, expected: Frame):
    np.testing.assert_array_equal(actual.numbers, expected.numbers)
    np.testing.assert_array_equal(actual.positions, expected.positions)
    np.testing.assert_array_equal(actual.cell, expected.cell)
    np.testing.assert_array_equal(actual.pbc, expected.pbc)
    for name in ('energy', 'forces', 'stress'):
        if getattr(expected, name) is None:
            assert getattr(actual, name) is None
        else:
            np.testing.assert_array_equal(getattr(actual, name), getattr(expected, name))
    for name in ('origin', 'iteration', 'split', 'failure_reason', 'info'):
        assert getattr(actual, name) == getattr(expected, name)


def test_round_trip_keeps_every_field_bit_for_bit(tmp_path, labelled_frames):
    labelled_frames[5].energy = labelled_frames[5].forces = labelled_frames[5].stress = None
    labelled_frames[5].failure_reason = 'SCF did not converge'
    labelled_frames[7].frame_arrays = {'committee_energy': np.arange(4.0)}
    labelled_frames[8].atom_arrays = {'committee_forces': np.ones((len(labelled_frames[8].numbers), 4, 3))}
    with DatasetReader(write(tmp_path / 'data.h5', labelled_frames)) as reader:
        assert len(reader) == 12
        frames = list(reader.iter_frames(block_frames=4))
    for actual, expected in zip(frames, labelled_frames, strict=True):
        assert_same_frame(actual, expected)
    np.testing.assert_array_equal(frames[7].frame_arrays['committee_energy'], np.arange(4.0))
    assert frames[8].atom_arrays['committee_forces'].shape == (len(frames[8].numbers), 4, 3)
    assert frames[6].frame_arrays == {} and frames[6].atom_arrays == {}
    assert not frames[5].labelled and frames[4].labelled


def test_streaming_reads_one_block_at_a_time(tmp_path, labelled_frames):
    with DatasetReader(write(tmp_path / 'data.h5', labelled_frames)) as reader:
        sizes = [len(batch) for batch in reader.iter_batches(block_frames=5)]
        selected = [frame.info['index'] for batch in reader.iter_selection([11, 0, 6], 5) for frame in batch.frames()]
    assert sizes == [5, 5, 2]
    assert selected == [0, 6, 11]


def test_checksum_depends_on_content_not_on_blocks(tmp_path, labelled_frames):
    with DatasetReader(write(tmp_path / 'a.h5', labelled_frames, block_frames=3)) as reader:
        first = reader.checksum()
    with DatasetReader(write(tmp_path / 'b.h5', labelled_frames, block_frames=7)) as reader:
        assert reader.checksum() == first
    labelled_frames[3].positions = labelled_frames[3].positions + 1e-12
    with DatasetReader(write(tmp_path / 'c.h5', labelled_frames)) as reader:
        assert reader.checksum() != first


def test_truncated_file_is_an_error_naming_it(tmp_path, labelled_frames):
    path = write(tmp_path / 'data.h5', labelled_frames)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(CorruptDatasetError, match=r'data\.h5'):
        with DatasetReader(path) as reader:
            list(reader.iter_batches())


def test_other_hdf5_file_is_rejected(tmp_path):
    import h5py

    with h5py.File(tmp_path / 'other.h5', 'w') as handle:
        handle['x'] = [1, 2]
    with pytest.raises(CorruptDatasetError, match='not a PESData file'):
        DatasetReader(tmp_path / 'other.h5')


def test_inconsistent_column_lengths_are_detected(tmp_path, labelled_frames):
    import h5py

    path = write(tmp_path / 'data.h5', labelled_frames)
    with h5py.File(path, 'a') as handle:
        handle['atoms/positions'].resize(5, axis=0)
    with pytest.raises(CorruptDatasetError, match='do not have the expected'):
        DatasetReader(path)


def test_newer_schema_is_refused(tmp_path, labelled_frames):
    import h5py

    path = write(tmp_path / 'data.h5', labelled_frames)
    with h5py.File(path, 'a') as handle:
        handle.attrs['schema_version'] = 99
    with pytest.raises(CorruptDatasetError, match='schema version 99'):
        DatasetReader(path)


def test_summary_gathered_while_writing_equals_the_one_read_from_the_file(tmp_path, labelled_frames):
    labelled_frames[2].failure_reason = 'SCF not converged'
    labelled_frames[2].energy = None
    labelled_frames[9].frame_arrays = {'committee_energy': np.arange(3.0)}  # a column that appears in block 2
    labelled_frames[10].atom_arrays = {'charges': np.ones(len(labelled_frames[10].numbers))}
    path = tmp_path / 'data.h5'
    with DatasetWriter(path, block_frames=4) as writer:
        writer.extend(labelled_frames)
    with DatasetReader(path) as reader:
        assert reader.summarize() == writer.attributes()
    assert writer.attributes()['num_failed'] == 1 and writer.attributes()['num_labelled'] == 11
    with DatasetWriter(tmp_path / 'other.h5', block_frames=4) as other:
        other.extend(labelled_frames[:11])
    assert other.attributes()['checksum'] != writer.attributes()['checksum']
