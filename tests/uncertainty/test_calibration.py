import numpy as np
import pytest

from aiida_trainspot.uncertainty.calibration import (
    DEFAULT_TOLERANCES,
    energy_errors,
    fit_through_origin,
    force_errors,
    stress_errors,
    threshold_from_tolerance,
    validate_tolerances,
)

pytestmark = pytest.mark.kernel


def test_fit_recovers_a_known_slope_from_noisy_data():
    rng = np.random.default_rng(7)
    disagreement = rng.uniform(0.01, 0.5, size=2000)
    error = 3.0 * disagreement + rng.normal(scale=0.02, size=disagreement.size)
    fit = fit_through_origin(disagreement, error)
    assert fit.slope == pytest.approx(3.0, rel=0.01)
    assert 0.97 < fit.r2 < 1.0
    assert fit.num_frames == 2000


def test_fit_matches_the_closed_form_and_drops_non_finite_pairs():
    disagreement = np.array([1.0, 2.0, np.nan, 4.0])
    error = np.array([2.0, 5.0, 1.0, np.inf])
    fit = fit_through_origin(disagreement, error)
    assert fit.slope == pytest.approx((1 * 2 + 2 * 5) / (1 + 4))
    residual = (2 - 2.4) ** 2 + (5 - 4.8) ** 2
    assert fit.r2 == pytest.approx(1 - residual / 4.5)
    assert fit.num_frames == 2


def test_fit_is_undetermined_without_two_positive_disagreements():
    assert fit_through_origin(np.array([0.0, 0.0, 0.3]), np.array([0.1, 0.2, 0.3])) is None
    assert fit_through_origin(np.zeros(0), np.zeros(0)) is None


def test_threshold_maps_the_tolerance_onto_the_disagreement_scale():
    fit = fit_through_origin(np.array([0.1, 0.2]), np.array([0.4, 0.8]))
    assert threshold_from_tolerance(fit, DEFAULT_TOLERANCES['forces']) == pytest.approx(0.05 / 4)
    negative = fit_through_origin(np.array([0.1, 0.2]), np.array([-0.4, -0.8]))
    assert threshold_from_tolerance(negative, 0.05) is None
    assert threshold_from_tolerance(None, 0.05) is None


def test_true_errors_per_frame():
    natoms = np.array([2, 1])
    assert energy_errors(np.array([1.0, -3.0]), np.array([1.5, -2.0]), natoms).tolist() == [0.25, 1.0]
    predicted = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    labels = np.zeros((3, 3))
    expected = [np.sqrt(9 / 3), 1.0]
    assert force_errors(predicted, labels, natoms) == pytest.approx(expected)
    stress = np.zeros((2, 3, 3))
    predicted_stress = np.stack([np.eye(3) * 3.0, np.full((3, 3), np.nan)])
    errors = stress_errors(predicted_stress, stress)
    assert errors[0] == pytest.approx(np.sqrt(27 / 9)) and np.isnan(errors[1])


@pytest.mark.parametrize(
    ('tolerances', 'message'),
    [({'energy': 0.0}, 'must be a positive number in eV/atom'), ({'virial': 1.0}, 'unknown properties')],
)
def test_bad_tolerances_are_named(tolerances, message):
    assert message in validate_tolerances(tolerances)
    assert validate_tolerances(DEFAULT_TOLERANCES) is None
