import math

import numpy as np
import pytest

from aiida_trainspot.uncertainty.threshold import MovingAverageThreshold, moving_average_thresholds

pytestmark = pytest.mark.kernel


def reference_thresholds(values, window, c_x, warmup, freeze_size, sizes):
    """Seed 000 Eq. 2 written plainly: warm-up at infinity, mean of the last `window` values, then frozen."""
    history, threshold, frozen, out = [], math.inf, False, []
    for value, size in zip(values, sizes, strict=True):
        history.append(value)
        if not frozen and len(history) > warmup:
            threshold = (1 + c_x) * np.mean(history[-window:])
            frozen = size >= freeze_size
        out.append(threshold)
    return np.array(out)


@pytest.mark.parametrize(
    ('window', 'c_x', 'warmup', 'freeze_size'),
    [(400, 0.0, 10, math.inf), (7, 0.1, 3, 30), (5, -0.2, 10, 0), (1, 0.0, 0, math.inf)],
)
def test_function_and_class_match_the_plain_reference(window, c_x, warmup, freeze_size):
    rng = np.random.default_rng(0)
    values = rng.exponential(size=600) * np.linspace(2.0, 0.5, 600)
    sizes = np.arange(600) // 10
    expected = reference_thresholds(values, window, c_x, warmup, freeze_size, sizes)
    vectorised = moving_average_thresholds(values, window, c_x, warmup, freeze_size, sizes)
    np.testing.assert_allclose(vectorised, expected, rtol=1e-9)
    running = MovingAverageThreshold(window, c_x, warmup, freeze_size)
    np.testing.assert_allclose([running.update(v, s) for v, s in zip(values, sizes, strict=True)], expected, rtol=1e-9)


def test_warm_up_window_and_freeze_by_hand():
    values = np.arange(1.0, 16.0)
    thresholds = moving_average_thresholds(values, window=4, c_x=0.5, warmup=10)
    assert np.isinf(thresholds[:10]).all()
    assert thresholds[10] == pytest.approx(1.5 * np.mean([8, 9, 10, 11]))
    assert thresholds[14] == pytest.approx(1.5 * np.mean([12, 13, 14, 15]))
    sizes = [0] * 12 + [5] * 3
    frozen = moving_average_thresholds(values, window=4, c_x=0.5, warmup=10, freeze_size=5, training_set_sizes=sizes)
    assert frozen[12:].tolist() == [pytest.approx(1.5 * np.mean([10, 11, 12, 13]))] * 3


def test_freezing_waits_for_an_active_threshold():
    running = MovingAverageThreshold(window=400, warmup=2, freeze_size=0)
    assert running.update(1.0) == math.inf and not running.frozen
    running.update(2.0)
    assert running.update(3.0) == pytest.approx(2.0) and running.frozen
    assert running.update(100.0) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ('kwargs', 'message'),
    [
        ({'window': 0}, '`window`'),
        ({'c_x': -1.0}, '`c_x`'),
        ({'warmup': -1}, '`warmup`'),
        ({'freeze_size': -1}, 'freeze'),
    ],
)
def test_bad_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MovingAverageThreshold(**kwargs)
    with pytest.raises(ValueError, match=message):
        moving_average_thresholds(np.ones(3), **kwargs)


def test_non_finite_uncertainty_is_rejected():
    with pytest.raises(ValueError, match='finite non-negative'):
        MovingAverageThreshold().update(float('nan'))
    with pytest.raises(ValueError, match='finite non-negative'):
        moving_average_thresholds(np.array([1.0, -1.0]))
