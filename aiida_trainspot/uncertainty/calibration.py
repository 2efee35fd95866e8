"""Calibration of committee disagreement against the true error on labelled frames (pure numpy, no AiiDA).

For each property (energy, forces, stress) the true error of the committee mean ``e`` is fitted, over the labelled
frames, as a line through the origin in the disagreement ``d``: ``e ≈ slope · d``. The calibrated disagreement
``slope · d`` is then an estimate of the error, and a user tolerance ``ε`` on the error becomes the disagreement
threshold ``ε / slope``. TrainsPot (seed 001, §II.1.6) writes the same map as ``δ = α ε``; we regress the error on the
disagreement (not the reverse) because the error is what we want to predict from the disagreement, which is the only
one of the two known for unlabelled frames. The line passes through the origin: a committee that agrees exactly has no
spread to calibrate, and the paper maps tolerances by a slope alone.

Each property pairs a stored disagreement column with a true error of the same form (see :data:`PROPERTIES`):

========  ==========================  =======================================================================
property  disagreement column         true error of the committee mean against the label
========  ==========================  =======================================================================
energy    ``energy_std_per_atom``     ``|mean_k E_k − E| / N`` (eV/atom)
forces    ``force_disagreement``      ``max_atoms sqrt(mean_xyz (mean_k F_k − F)²)`` (eV/Å)
stress    ``stress_std``              ``sqrt(mean over the 9 components of (mean_k S_k − S)²)`` (eV/Å³)
========  ==========================  =======================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

PROPERTIES = {'energy': 'energy_std_per_atom', 'forces': 'force_disagreement', 'stress': 'stress_std'}
"""Calibrated property → the per-frame disagreement column it is calibrated on."""

UNITS = {'energy': 'eV/atom', 'forces': 'eV/Å', 'stress': 'eV/Å³'}

DEFAULT_TOLERANCES = {'energy': 0.002, 'forces': 0.050, 'stress': 0.010}
"""Error tolerances of seed 001's Methods (2 meV/atom, 50 meV/Å, 10 meV/Å³), in eV/atom, eV/Å and eV/Å³."""

MIN_FRAMES = 2
"""Fewest frames with a positive disagreement a fit needs."""


@dataclass(frozen=True)
class LinearFit:
    """A line through the origin ``error = slope · disagreement`` and how well it describes the data."""

    slope: float
    r2: float
    num_frames: int

    def as_dict(self) -> dict[str, float | int]:
        """Return the fit as a JSON-serialisable mapping."""
        return asdict(self)


def validate_tolerances(tolerances: Mapping[str, float]) -> str | None:
    """Return why ``tolerances`` (property → positive error tolerance) are unusable, or ``None``."""
    unknown = sorted(set(tolerances) - set(PROPERTIES))
    if unknown:
        return f'unknown properties {unknown}: use {sorted(PROPERTIES)}'
    for name, value in tolerances.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value) or value <= 0:
            return f'the tolerance of `{name}` must be a positive number in {UNITS[name]}, got {value!r}'
    return None


def fit_through_origin(disagreement: np.ndarray, error: np.ndarray) -> LinearFit | None:
    """Return the least-squares line ``error = slope · disagreement``, or ``None`` if it is undetermined.

    Pairs with a non-finite value are dropped. The fit is undetermined with fewer than :data:`MIN_FRAMES` frames of
    positive disagreement. ``r2`` is the usual ``1 − SS_res / SS_tot`` about the mean error (it can be negative when a
    line through the origin is worse than the mean; it is NaN-free: 1.0 when all errors are equal and fitted exactly).
    """
    disagreement = np.asarray(disagreement, dtype=np.float64)
    error = np.asarray(error, dtype=np.float64)
    if disagreement.shape != error.shape or disagreement.ndim != 1:
        raise ValueError(f'disagreement {disagreement.shape} and error {error.shape} must be 1-D of equal length')
    finite = np.isfinite(disagreement) & np.isfinite(error)
    x, y = disagreement[finite], error[finite]
    if np.count_nonzero(x > 0) < MIN_FRAMES:
        return None
    slope = float(x @ y / (x @ x))
    residual = float(np.sum((y - slope * x) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    if total > 0:
        r2 = 1.0 - residual / total
    else:
        r2 = 1.0 if residual == 0 else 0.0
    return LinearFit(slope=slope, r2=r2, num_frames=len(x))


def threshold_from_tolerance(fit: LinearFit | None, tolerance: float) -> float | None:
    """Return the disagreement above which the predicted error ``slope · d`` exceeds ``tolerance``.

    ``None`` if there is no fit or its slope is not positive (the disagreement then says nothing about the error).
    """
    if fit is None or not fit.slope > 0:
        return None
    return tolerance / fit.slope


def energy_errors(energy_mean: np.ndarray, energy: np.ndarray, natoms: np.ndarray) -> np.ndarray:
    """Return ``|mean_k E_k − E| / N`` (eV/atom) per frame from the committee mean and labelled energies (eV)."""
    return np.abs(np.asarray(energy_mean) - np.asarray(energy)) / np.asarray(natoms)


def force_errors(forces_mean: np.ndarray, forces: np.ndarray, natoms: np.ndarray) -> np.ndarray:
    """Return per frame the largest per-atom RMS (over x, y, z) error of the committee-mean forces (eV/Å).

    ``forces_mean`` and ``forces`` are ``(N, 3)``, concatenated over frames whose atom counts are ``natoms``.
    """
    natoms = np.asarray(natoms, dtype=np.int64)
    if not len(natoms):
        return np.zeros(0)
    per_atom = np.sqrt(np.mean((np.asarray(forces_mean) - np.asarray(forces)) ** 2, axis=1))
    return np.maximum.reduceat(per_atom, np.concatenate(([0], np.cumsum(natoms)[:-1])))


def stress_errors(stress_mean: np.ndarray, stress: np.ndarray) -> np.ndarray:
    """Return per frame the RMS over the 9 components of the committee-mean stress error (eV/Å³), NaN if absent."""
    difference = np.asarray(stress_mean) - np.asarray(stress)
    return np.sqrt(np.mean(difference.reshape(len(difference), 9) ** 2, axis=1))
