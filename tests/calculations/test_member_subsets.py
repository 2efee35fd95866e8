"""``member_training_frames``: the training frames dealt out to the members, disjoint, stable as the dataset grows."""

import numpy as np
import pytest
from aiida.orm import Int
from ase.build import bulk

from aiida_trainspot.calculations.functions.dataset import member_training_frames, merge_datasets
from aiida_trainspot.data import PESData
from tests.conftest import frame_of

pytestmark = pytest.mark.aiida

SPLITS = ('train', 'train', 'valid', 'train', 'test', 'train', 'train', 'train', 'valid', 'train')


def labelled(indices, splits) -> PESData:
    """Return labelled copper frames numbered ``indices`` (in ``info['index']``) with the split tags ``splits``."""
    rng = np.random.default_rng(0)
    frames = []
    for index, split in zip(indices, splits, strict=True):
        atoms = bulk('Cu', 'fcc', a=3.61) * (1, 1, 2)
        atoms.rattle(0.05, seed=index)
        forces = rng.normal(size=(len(atoms), 3))
        frames.append(frame_of(atoms, energy=-1.0 * index, forces=forces, split=split, info={'index': index}))
    return PESData.from_frames(frames).store()


def by_split(dataset: PESData) -> dict[str, list[int]]:
    """Return the frame numbers of ``dataset`` per split tag."""
    result: dict[str, list[int]] = {}
    for frame in dataset.iter_frames():
        result.setdefault(frame.split, []).append(frame.info['index'])
    return result


def shares(dataset: PESData, members: int) -> list[dict[str, list[int]]]:
    return [by_split(member_training_frames(dataset, Int(member), Int(members))) for member in range(members)]


def test_members_get_disjoint_training_frames_and_share_the_others():
    dataset = labelled(range(10), SPLITS)
    parts = shares(dataset, 3)
    train = [part['train'] for part in parts]
    assert train == [[0, 5, 9], [1, 6], [3, 7]], 'position p among the training frames goes to member p mod 3'
    assert sorted(index for part in train for index in part) == by_split(dataset)['train']
    for part in parts:
        assert part['valid'] == [2, 8] and part['test'] == [4], 'every member keeps the validation and test frames'


def test_shares_are_stable_when_the_dataset_grows_by_appending():
    first = labelled(range(10), SPLITS)
    grown = merge_datasets(a=first, b=labelled(range(10, 16), ('train', 'valid', 'train', 'train', 'train', 'test')))
    before, after = shares(first, 4), shares(grown, 4)
    for old, new in zip(before, after, strict=True):
        assert new['train'][: len(old['train'])] == old['train'], 'a member keeps its earlier frames'
    new_train = sorted(index for part in after for index in part['train'] if index >= 10)
    assert new_train == [10, 12, 13, 14]
    assert [len(part['train']) for part in after] == [3, 3, 3, 2], '11 training frames dealt out to 4 members'


def test_isolated_atoms_stay_with_every_member():
    dataset = labelled(range(6), ('train',) * 4 + ('valid', 'test'))
    atom = bulk('Cu', 'fcc', a=3.61)[:1]
    atom.pbc, atom.cell = False, [10, 10, 10]
    isolated = PESData.from_frames(
        [frame_of(atom, energy=-0.1, forces=np.zeros((1, 3)), split='train', info={'index': 99})]
    ).store()
    parts = shares(merge_datasets(a=isolated, b=dataset), 2)
    assert [part['train'] for part in parts] == [[99, 0, 2], [99, 1, 3]]


def test_a_member_outside_the_committee_is_refused():
    with pytest.raises(ValueError, match=r'`member` must lie in \[0, 2\)'):
        member_training_frames(labelled(range(3), ('train',) * 3), Int(2), Int(2))
