"""Errors the trainers could not compute (printed ``nan``) are stored as ``None``: the database holds no NaN."""

import math

from aiida_trainspot.training import finite_or_none


def test_nested_nan_and_infinities_become_none():
    errors = {'train': {'energy_rmse': 1.5, 'stress_rmse': math.nan}, 'test': [math.inf, -math.inf, 2], 'n': 3}
    assert finite_or_none(errors) == {
        'train': {'energy_rmse': 1.5, 'stress_rmse': None},
        'test': [None, None, 2],
        'n': 3,
    }
