"""Committee disagreement per frame, from the predictions of every member (pure numpy, no AiiDA).

All standard deviations are population standard deviations (``ddof=0``) across the ``M`` members. Per frame:

- ``energy_std_per_atom`` (eV/atom): the std of the members' total energies divided by the number of atoms;
- ``force_disagreement`` (eV/Å): aims-PAX Eq. 1, the maximum over atoms of
  ``sqrt(mean over members and x, y, z of (F - mean over members of F)²)``;
- ``force_mean_deviation`` (eV/Å): the mean over atoms of the same per-atom RMS deviation;
- ``stress_std`` (eV/Å³): the RMS over the 9 components of the members' stress std (NaN where stress is absent).

A block of frames is handled at once: energies ``(M, F)``, forces ``(M, N, 3)`` concatenated over the frames whose
atom counts ``natoms`` ``(F,)`` give each frame's share of ``N``, stresses ``(M, F, 3, 3)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METRIC_NAMES = ('energy_std_per_atom', 'force_disagreement', 'force_mean_deviation', 'stress_std')
"""The per-frame metrics, in the order of :class:`CommitteeMetrics`; also their column names in a dataset."""


@dataclass(frozen=True)
class CommitteeMetrics:
    """The disagreement metrics of a block of frames, one value per frame (see the module docstring)."""

    energy_std_per_atom: np.ndarray
    force_disagreement: np.ndarray
    force_mean_deviation: np.ndarray
    stress_std: np.ndarray

    def as_columns(self) -> dict[str, np.ndarray]:
        """Return the metrics by name, as the per-frame columns of a dataset."""
        return {name: getattr(self, name) for name in METRIC_NAMES}


def atomic_force_deviation(forces: np.ndarray) -> np.ndarray:
    """Return the RMS deviation from the committee mean of each atom's force, ``(N,)``, from ``forces`` ``(M, N, 3)``.

    The mean is taken over the members and the three Cartesian components.
    """
    forces = np.asarray(forces, dtype=np.float64)
    deviation = forces - forces.mean(axis=0, keepdims=True)
    return np.sqrt(np.mean(deviation**2, axis=(0, 2)))


def _check_shapes(energies: np.ndarray, forces: np.ndarray, natoms: np.ndarray, stresses: np.ndarray | None) -> None:
    """Raise ``ValueError`` naming the first argument whose shape does not fit the others."""
    if energies.ndim != 2 or energies.shape[0] < 2:
        raise ValueError(f'`energies` must have shape (members >= 2, frames), got {energies.shape}')
    members, frames = energies.shape
    if natoms.shape != (frames,) or (frames and natoms.min() < 1):
        raise ValueError(f'`natoms` must hold {frames} positive atom counts, got {natoms.tolist()}')
    if forces.shape != (members, int(natoms.sum()), 3):
        raise ValueError(f'`forces` must have shape {(members, int(natoms.sum()), 3)}, got {forces.shape}')
    if stresses is not None and stresses.shape != (members, frames, 3, 3):
        raise ValueError(f'`stresses` must have shape {(members, frames, 3, 3)}, got {stresses.shape}')


def committee_metrics(
    energies: np.ndarray, forces: np.ndarray, natoms: np.ndarray, stresses: np.ndarray | None = None
) -> CommitteeMetrics:
    """Return the metrics of a block of frames from the members' ``energies``, ``forces`` and ``stresses``.

    Shapes: ``energies`` ``(M, F)`` eV, ``forces`` ``(M, N, 3)`` eV/Å with ``N = natoms.sum()``, ``natoms`` ``(F,)``,
    ``stresses`` ``(M, F, 3, 3)`` eV/Å³ (NaN for frames without stress) or ``None`` (``stress_std`` is then NaN).
    Raise ``ValueError`` if the shapes do not fit or there are fewer than two members.
    """
    energies, forces = np.asarray(energies, dtype=np.float64), np.asarray(forces, dtype=np.float64)
    natoms = np.asarray(natoms, dtype=np.int64)
    stresses = None if stresses is None else np.asarray(stresses, dtype=np.float64)
    _check_shapes(energies, forces, natoms, stresses)
    frames = len(natoms)
    if frames == 0:
        empty = np.zeros(0)
        return CommitteeMetrics(empty, empty, empty, empty)
    starts = np.concatenate(([0], np.cumsum(natoms)[:-1]))
    per_atom = atomic_force_deviation(forces)
    if stresses is None:
        stress_std = np.full(frames, np.nan)
    else:
        stress_std = np.sqrt(np.mean(stresses.reshape(len(stresses), frames, 9).var(axis=0), axis=1))
    return CommitteeMetrics(
        energy_std_per_atom=energies.std(axis=0) / natoms,
        force_disagreement=np.maximum.reduceat(per_atom, starts),
        force_mean_deviation=np.add.reduceat(per_atom, starts) / natoms,
        stress_std=stress_std,
    )


def frame_metrics(energies: np.ndarray, forces: np.ndarray, stresses: np.ndarray | None = None) -> dict[str, float]:
    """Return the metrics of one frame from its members' ``energies`` ``(M,)``, ``forces`` ``(M, N, 3)``, ``stresses``.

    ``stresses`` is ``(M, 3, 3)`` or ``None`` (a frame without stress: ``stress_std`` is NaN).
    """
    forces = np.asarray(forces, dtype=np.float64)
    if forces.ndim != 3:
        raise ValueError(f'`forces` must have shape (members, atoms, 3), got {forces.shape}')
    metrics = committee_metrics(
        np.asarray(energies, dtype=np.float64)[:, None],
        forces,
        np.array([forces.shape[1]]),
        None if stresses is None else np.asarray(stresses, dtype=np.float64)[:, None],
    )
    return {name: float(values[0]) for name, values in metrics.as_columns().items()}
