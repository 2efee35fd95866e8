import numpy as np
import pytest

from aiida_trainspot.dataset import FrameBatch, query_mask, validate_query

pytestmark = pytest.mark.kernel


@pytest.fixture
def batch(labelled_frames):
    labelled_frames[1].energy = None
    labelled_frames[1].failure_reason = 'walltime'
    return FrameBatch.from_frames(labelled_frames)


@pytest.mark.parametrize(
    ('query', 'expected'),
    [
        ({}, list(range(12))),
        ({'split': 'train'}, [0, 4, 8]),
        ({'split': ['valid', 'test']}, [1, 2, 5, 6, 9, 10]),
        ({'split': ''}, [3, 7, 11]),
        ({'origin': 'input', 'labelled': True}, [0, 2, 3]),
        ({'iteration': [0, 2]}, [0, 1, 2, 3, 8, 9, 10, 11]),
        ({'iteration_min': 1, 'iteration_max': 1}, [4, 5, 6, 7]),
        ({'failed': True}, [1]),
    ],
)
def test_query_selects_matching_frames(batch, query, expected):
    assert np.flatnonzero(query_mask(batch, query)).tolist() == expected


@pytest.mark.parametrize(
    ('query', 'message'),
    [
        ({'colour': 'red'}, 'unknown query key `colour`'),
        ({'split': 'training'}, 'query `split`'),
        ({'labelled': 'yes'}, 'query `labelled`'),
        ({'iteration': 1.5}, 'query `iteration`'),
    ],
)
def test_bad_query_is_named(query, message):
    assert message in validate_query(query)
