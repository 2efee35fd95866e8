import numpy as np
import pytest

from aiida_trainspot.dataset import DatasetWriter, Frame

pytestmark = pytest.mark.kernel


def good_frame(**changes) -> Frame:
    fields = dict(numbers=[6, 6], positions=np.zeros((2, 3)), cell=np.eye(3) * 4, pbc=[True] * 3, energy=-1.0)
    fields.update(forces=np.zeros((2, 3)), stress=np.zeros((3, 3)))
    fields.update(changes)
    return Frame(**fields)


@pytest.mark.parametrize(
    ('changes', 'field', 'message'),
    [
        ({'positions': np.zeros((3, 3))}, 'positions', 'shape'),
        ({'forces': np.zeros((1, 3))}, 'forces', 'shape'),
        ({'positions': np.zeros((2, 2))}, 'positions', 'shape'),
        ({'cell': np.eye(2)}, 'cell', 'shape'),
        ({'stress': np.zeros(6)}, 'stress', 'shape'),
        ({'pbc': [True, False]}, 'pbc', 'shape'),
        ({'numbers': [6, 0]}, 'numbers', r'unknown atomic numbers \[0\]'),
        ({'numbers': [6, 119]}, 'numbers', r'unknown atomic numbers \[119\]'),
        ({'numbers': []}, 'numbers', 'empty'),
        ({'energy': np.nan}, 'energy', 'NaN'),
        ({'forces': np.array([[0, 0, np.inf], [0, 0, 0]])}, 'forces', 'NaN or infinite'),
        ({'positions': np.array([[np.nan, 0, 0], [0, 0, 0]])}, 'positions', 'NaN'),
        ({'stress': np.full((3, 3), np.inf)}, 'stress', 'infinite'),
        ({'split': 'training'}, 'split', 'expected one of'),
        ({'info': {'bad': object()}}, 'info', 'JSON'),
        ({'energy': 'high'}, 'energy', 'cannot be read'),
    ],
)
def test_bad_frame_is_rejected_naming_frame_and_field(tmp_path, changes, field, message):
    """The third frame is bad: the error names frame 2 and the field, and no dataset file is left half-written."""
    with pytest.raises(ValueError, match=rf'frame 2: field `{field}`.*{message}'):
        with DatasetWriter(tmp_path / 'data.h5') as writer:
            writer.extend([good_frame(), good_frame(), good_frame(**changes)])


def test_labelled_needs_energy_and_forces():
    assert good_frame().labelled
    assert not good_frame(forces=None).labelled
    assert not good_frame(energy=None).labelled
