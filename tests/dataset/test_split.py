import numpy as np
import pytest

from aiida_trainspot.dataset.batch import SPLIT_CODES
from aiida_trainspot.dataset.split import DEFAULT_FRACTIONS, assign_splits, split_counts, validate_fractions

pytestmark = pytest.mark.kernel

TRAIN, VALID, TEST = SPLIT_CODES['train'], SPLIT_CODES['valid'], SPLIT_CODES['test']


def assign(splits, labelled=None, origins=None, isolated=None, seed=0):
    count = len(splits)
    return assign_splits(
        np.asarray(splits, dtype=np.int8),
        np.ones(count, bool) if labelled is None else np.asarray(labelled),
        origins or ['md'] * count,
        np.zeros(count, bool) if isolated is None else np.asarray(isolated),
        DEFAULT_FRACTIONS,
        np.random.default_rng(seed),
    )


def test_new_frames_are_shared_80_10_10():
    splits = assign([0] * 100)
    assert np.bincount(splits, minlength=4)[1:].tolist() == [80, 10, 10]


def test_tags_persist_and_only_new_labelled_frames_get_one():
    first = assign([0] * 50)
    grown = np.concatenate([first, np.zeros(30, np.int8)])
    labelled = np.r_[np.ones(70, bool), np.zeros(10, bool)]
    second = assign(grown, labelled=labelled, seed=1)
    np.testing.assert_array_equal(second[:50], first)  # a test frame never becomes training data
    assert (second[50:70] > 0).all() and (second[70:] == 0).all()


def test_inputs_and_isolated_atoms_always_train():
    origins = ['input'] * 3 + ['md'] * 7
    isolated = [False] * 9 + [True]
    splits = assign([0] * 10, origins=origins, isolated=isolated)
    assert (splits[:3] == TRAIN).all() and splits[9] == TRAIN
    assert set(splits[3:9].tolist()) <= {TRAIN, VALID, TEST}


def test_seed_decides_and_a_small_set_still_validates():
    assert not np.array_equal(assign([0] * 40, seed=1), assign([0] * 40, seed=2))
    np.testing.assert_array_equal(assign([0] * 40, seed=3), assign([0] * 40, seed=3))
    assert split_counts(3, DEFAULT_FRACTIONS) == {'train': 2, 'valid': 1, 'test': 0}
    assert split_counts(1, DEFAULT_FRACTIONS) == {'train': 1, 'valid': 0, 'test': 0}


@pytest.mark.parametrize(
    ('fractions', 'message'),
    [
        ({'train': 0.8, 'holdout': 0.2}, 'unknown split names'),
        ({'train': 0.8, 'valid': 0.1}, 'sum to 1'),
        ({'train': 1.2, 'valid': -0.2}, 'lie in'),
        ({'valid': 0.5, 'test': 0.5}, '`train` fraction must be positive'),
    ],
)
def test_bad_fractions_are_named(fractions, message):
    assert message in validate_fractions(fractions)
