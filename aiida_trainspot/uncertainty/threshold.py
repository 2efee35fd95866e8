"""The adaptive uncertainty threshold of aims-PAX (seed 000, Eq. 2), pure numpy, no AiiDA.

After each uncertainty check ``δ_n`` the threshold is the scaled moving average of the last ``window`` checks,
current one included: ``δ_t = (1 + c_x) / N · Σ_{n=t−N+1}^{t} δ_n`` with ``N = min(t, window)``. It is not active
(infinite: nothing crosses it) until more than ``warmup`` checks exist, and it stops changing once the training set
reaches ``freeze_size`` frames. Freezing only holds an active threshold: a threshold frozen during the warm-up would
stay infinite forever, so it keeps updating until it is active and freezes then. The checks are pooled across all
trajectories that share the threshold.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

DEFAULT_WINDOW = 400
DEFAULT_C_X = 0.0
DEFAULT_WARMUP = 10


def validate_threshold_parameters(window: int, c_x: float, warmup: int, freeze_size: float) -> str | None:
    """Return why the threshold parameters are unusable, or ``None``."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        return f'`window` must be a positive integer, got {window!r}'
    if not math.isfinite(c_x) or c_x <= -1:
        return f'`c_x` must be a number greater than -1 (the threshold must stay positive), got {c_x!r}'
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        return f'`warmup` must be a non-negative integer, got {warmup!r}'
    if math.isnan(freeze_size) or freeze_size < 0:
        return f'`freeze_size` must be a non-negative number of frames (or infinity), got {freeze_size!r}'
    return None


def _check(window: int, c_x: float, warmup: int, freeze_size: float) -> None:
    """Raise ``ValueError`` if the threshold parameters are unusable."""
    message = validate_threshold_parameters(window, c_x, warmup, freeze_size)
    if message:
        raise ValueError(message)


class MovingAverageThreshold:
    """The running threshold: feed it each uncertainty with :meth:`update` and read :attr:`threshold`."""

    def __init__(
        self,
        window: int = DEFAULT_WINDOW,
        c_x: float = DEFAULT_C_X,
        warmup: int = DEFAULT_WARMUP,
        freeze_size: float = math.inf,
    ) -> None:
        """Set the window length, the scale ``1 + c_x``, the warm-up length and the training-set size that freezes."""
        _check(window, c_x, warmup, freeze_size)
        self.c_x = c_x
        self.warmup = warmup
        self.freeze_size = freeze_size
        self._recent: deque[float] = deque(maxlen=window)
        self.num_values = 0
        self.frozen = False
        self.threshold = math.inf

    def state(self) -> dict:
        """Return the threshold as JSON (parameters, recent values, counts); :meth:`from_state` rebuilds it."""
        return {
            'window': self._recent.maxlen,
            'c_x': self.c_x,
            'warmup': self.warmup,
            'freeze_size': None if math.isinf(self.freeze_size) else self.freeze_size,
            'recent': list(self._recent),
            'num_values': self.num_values,
            'frozen': self.frozen,
            'threshold': None if math.isinf(self.threshold) else self.threshold,
        }

    @classmethod
    def from_state(cls, state: dict) -> MovingAverageThreshold:
        """Return the threshold of a :meth:`state`."""
        freeze = math.inf if state['freeze_size'] is None else state['freeze_size']
        threshold = cls(state['window'], state['c_x'], state['warmup'], freeze)
        threshold._recent.extend(state['recent'])
        threshold.num_values, threshold.frozen = state['num_values'], state['frozen']
        threshold.threshold = math.inf if state['threshold'] is None else state['threshold']
        return threshold

    def update(self, value: float, training_set_size: int = 0) -> float:
        """Record the uncertainty ``value`` and return the threshold that applies to it.

        ``training_set_size`` is the current number of training frames; reaching ``freeze_size`` freezes the
        threshold after this update (if it is active).
        """
        if not math.isfinite(value) or value < 0:
            raise ValueError(f'an uncertainty must be a finite non-negative number, got {value!r}')
        self._recent.append(float(value))
        self.num_values += 1
        if self.frozen:
            return self.threshold
        if self.num_values > self.warmup:
            self.threshold = (1.0 + self.c_x) * float(np.mean(self._recent))
            self.frozen = training_set_size >= self.freeze_size
        return self.threshold


def moving_average_thresholds(
    values: np.ndarray,
    window: int = DEFAULT_WINDOW,
    c_x: float = DEFAULT_C_X,
    warmup: int = DEFAULT_WARMUP,
    freeze_size: float = math.inf,
    training_set_sizes: np.ndarray | None = None,
) -> np.ndarray:
    """Return the threshold after each of ``values``, as :class:`MovingAverageThreshold` would give it.

    ``training_set_sizes`` holds the training-set size at each value (default: all 0, never frozen).
    """
    _check(window, c_x, warmup, freeze_size)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError('`values` must be a 1-D array of finite non-negative uncertainties')
    sizes = np.zeros(len(values)) if training_set_sizes is None else np.asarray(training_set_sizes, dtype=np.float64)
    if sizes.shape != values.shape:
        raise ValueError(f'`training_set_sizes` has shape {sizes.shape}, `values` {values.shape}')
    counts = np.arange(1, len(values) + 1)
    sums = np.cumsum(np.concatenate(([0.0], values)))
    starts = np.maximum(counts - window, 0)
    thresholds = (1.0 + c_x) * (sums[counts] - sums[starts]) / (counts - starts)
    thresholds[counts <= warmup] = math.inf
    frozen = np.flatnonzero((counts > warmup) & (sizes >= freeze_size))
    if len(frozen):
        thresholds[frozen[0] + 1 :] = thresholds[frozen[0]]
    return thresholds
