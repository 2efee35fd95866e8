"""When a campaign stops: targets, iterations, budget, in that order; the selection cap within the budget."""

import math

import pytest

from aiida_trainspot.campaign.stopping import (
    STOP_REASONS,
    labels_left,
    selection_cap,
    stop_after_evaluation,
    targets_met,
)

ERRORS = {'energy_rmse': 3.0, 'forces_rmse': 80.0, 'stress_rmse': None}


@pytest.mark.parametrize(
    ('targets', 'met'),
    [
        (None, False),
        ({}, False),
        ({'energy': 3.0}, True),
        ({'energy': 2.9}, False),
        ({'energy': 5.0, 'forces': 100.0}, True),
        ({'energy': 5.0, 'forces': 79.0}, False),
        ({'stress': 10.0}, False),  # no stress error: a target cannot be met without data
    ],
)
def test_targets_met(targets, met):
    assert targets_met(targets, ERRORS) is met


def test_nan_error_never_meets_a_target():
    assert not targets_met({'forces': 1e9}, {'forces_rmse': math.nan})


def test_precedence_target_then_iterations_then_budget():
    assert stop_after_evaluation(2, 2, 10, 10, {'energy': 5.0}, ERRORS) == 'accuracy_target'
    assert stop_after_evaluation(2, 2, 10, 10, {'energy': 1.0}, ERRORS) == 'max_iterations'
    assert stop_after_evaluation(1, 2, 10, 10, None, ERRORS) == 'label_budget'
    assert stop_after_evaluation(1, 2, 11, 10, None, ERRORS) is None
    assert stop_after_evaluation(0, 0, None, 10, None, ERRORS) == 'max_iterations'
    assert set(STOP_REASONS) >= {'accuracy_target', 'max_iterations', 'label_budget', 'no_uncertain_frames'}


def test_selection_cap_within_the_budget():
    assert selection_cap(50, None, 1000) == 50
    assert selection_cap(50, 120, 100) == 20
    assert selection_cap(50, 100, 130) == 0
    assert labels_left(None, 5) is None and labels_left(4, 5) == 0
