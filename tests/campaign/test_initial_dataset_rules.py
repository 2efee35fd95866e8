"""The rules of the initial dataset generation: parameters, the ensemble's force MAE, epochs, frames, stopping."""

import math
import re

import pytest

from aiida_trainspot.campaign.initial_dataset import (
    STOP_REASONS,
    ensemble_force_mae,
    epochs_this_round,
    frames_to_label,
    member_force_mae,
    parameters_error,
    stop_after_round,
    target_mae,
)

pytestmark = pytest.mark.kernel


@pytest.mark.parametrize(
    ('parameters', 'message'),
    [
        ({'max_rounds': 2}, None),
        ({'desired_accuracy': 0.01, 'accuracy_scale': 3}, None),
        ({'max_dataset_size': 100, 'seed': 0}, None),
        ([], r'`parameters` must be a mapping'),
        ({}, r'no stopping criterion'),
        ({'desired_accuracy': None, 'max_epochs': None}, r'no stopping criterion'),
        ({'max_rounds': 2, 'rounds': 3}, r"unknown fields \['rounds'\]"),
        ({'desired_accuracy': 0}, r'`parameters.desired_accuracy` must be a positive number'),
        ({'desired_accuracy': math.inf}, r'`parameters.desired_accuracy` must be a positive number'),
        ({'max_rounds': 1, 'accuracy_scale': -1.0}, r'`parameters.accuracy_scale` must be a positive number'),
        ({'max_rounds': 1, 'accuracy_scale': None}, r'cannot be null'),
        ({'max_epochs': 0}, r'`parameters.max_epochs` must be a positive integer'),
        ({'max_dataset_size': 10.0}, r'`parameters.max_dataset_size` must be a positive integer'),
        ({'max_rounds': True}, r'`parameters.max_rounds` must be a positive integer'),
        ({'max_rounds': 1, 'epochs_per_round': -5}, r'`parameters.epochs_per_round` must be a positive integer'),
        ({'max_rounds': 1, 'seed': -1}, r'`parameters.seed` must be an integer in'),
    ],
)
def test_parameters_are_checked_naming_the_field(parameters, message):
    error = parameters_error(parameters)
    if message is None:
        assert error is None
    else:
        assert error is not None and re.search(message, error), error


def test_member_mae_is_read_in_its_unit():
    assert member_force_mae({'valid': {'forces_mae': 40.0}, 'units': {'forces': 'meV/Å'}}) == pytest.approx(0.04)
    assert member_force_mae({'valid': {'forces_mae': 0.04}, 'units': {'forces': 'eV/Å'}}) == pytest.approx(0.04)
    assert member_force_mae({'valid': {'forces_rmse': 40.0}, 'units': {'forces': 'meV/Å'}}) is None
    assert member_force_mae({'valid': {'forces_mae': 40.0}, 'units': {'forces': 'kcal/mol/Å'}}) is None


def test_ensemble_mae_is_the_mean_over_members_and_needs_every_member():
    members = [{'valid': {'forces_mae': value}, 'units': {'forces': 'meV/Å'}} for value in (30.0, 50.0)]
    assert ensemble_force_mae(members) == pytest.approx(0.04)
    assert ensemble_force_mae([*members, {'valid': {}, 'units': {'forces': 'meV/Å'}}]) is None
    assert ensemble_force_mae([]) is None


def test_epochs_per_round_are_capped_by_max_epochs():
    assert epochs_this_round({'max_rounds': 3}, 100) == 5
    assert epochs_this_round({'max_epochs': 12}, 0) == 5
    assert epochs_this_round({'max_epochs': 12}, 10) == 2
    assert epochs_this_round({'max_epochs': 12, 'epochs_per_round': 20}, 0) == 12


def test_frames_to_label_keep_the_dataset_within_its_maximum():
    assert frames_to_label({'max_rounds': 1}, 1000, 40) == 40
    assert frames_to_label({'max_dataset_size': 50}, 20, 40) == 30
    assert frames_to_label({'max_dataset_size': 50}, 50, 40) == 0


@pytest.mark.parametrize(
    ('parameters', 'state', 'reason'),
    [
        ({'desired_accuracy': 0.02}, (1, 5, 10, 0.19), 'desired_accuracy'),  # 0.02 × 10 = 0.2 eV/Å
        ({'desired_accuracy': 0.02}, (1, 5, 10, 0.21), None),
        ({'desired_accuracy': 0.02}, (1, 5, 10, None), None),  # no MAE reported: the accuracy is unknown
        ({'desired_accuracy': 0.02, 'accuracy_scale': 1.0}, (1, 5, 10, 0.19), None),
        ({'desired_accuracy': 0.02, 'max_rounds': 1}, (1, 5, 10, 0.1), 'desired_accuracy'),  # precedence
        ({'desired_accuracy': 0.02, 'max_rounds': 1}, (1, 5, 10, 0.3), 'max_rounds'),
        ({'max_rounds': 2, 'max_epochs': 10}, (2, 10, 10, 0.3), 'max_rounds'),
        ({'max_rounds': 3, 'max_epochs': 10}, (2, 10, 10, 0.3), 'max_epochs'),
        ({'max_epochs': 10, 'max_dataset_size': 10}, (2, 9, 10, 0.3), 'max_dataset_size'),
        ({'max_dataset_size': 10}, (2, 9, 9, 0.3), None),
    ],
)
def test_stop_after_round_in_order_of_precedence(parameters, state, reason):
    assert stop_after_round(parameters, *state) == reason
    assert reason is None or reason in STOP_REASONS


def test_target_mae_is_the_scaled_desired_accuracy():
    assert target_mae({'desired_accuracy': 0.01}) == pytest.approx(0.1)
    assert target_mae({'desired_accuracy': 0.01, 'accuracy_scale': 3.0}) == pytest.approx(0.03)
    assert target_mae({'max_rounds': 2}) is None
