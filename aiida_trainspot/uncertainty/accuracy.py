"""Accuracy of a committee on labelled frames: the RMSE of the committee mean per split (pure, no AiiDA).

Energies per atom in meV/atom, forces per Cartesian component in meV/Å, stresses per component in meV/Å³, the
conventions of MACE's error tables; frames of a split without a stress label add nothing to the stress RMSE.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

SPLITS = ('train', 'valid', 'test')
QUANTITIES = ('energy', 'forces', 'stress')


@dataclass
class SquaredErrors:
    """Running sums of squared errors and their counts per quantity, for one split."""

    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(QUANTITIES, 0.0))
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(QUANTITIES, 0))
    frames: int = 0

    def add(self, quantity: str, errors: np.ndarray) -> None:
        """Add the finite ``errors`` of ``quantity``."""
        finite = errors[np.isfinite(errors)]
        self.sums[quantity] += float(np.sum(finite**2))
        self.counts[quantity] += int(finite.size)

    def rmse_mev(self) -> dict[str, float | int | None]:
        """Return ``<quantity>_rmse`` in meV units (``None`` without data) and ``num_frames``."""
        result: dict[str, float | int | None] = {
            f'{name}_rmse': 1000.0 * float(np.sqrt(self.sums[name] / self.counts[name])) if self.counts[name] else None
            for name in QUANTITIES
        }
        result['num_frames'] = self.frames
        return result


def accumulate_frame(
    errors: SquaredErrors,
    natoms: int,
    energy: tuple[float, float],
    forces: tuple[np.ndarray, np.ndarray],
    stress: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    """Add one frame's (predicted, true) energy, forces and stress (``None`` if unlabelled) to ``errors``."""
    errors.frames += 1
    errors.add('energy', np.array([(energy[0] - energy[1]) / natoms]))
    errors.add('forces', (forces[0] - forces[1]).ravel())
    if stress is not None:
        errors.add('stress', (stress[0] - stress[1]).ravel())


def split_rmse(per_split: Mapping[str, SquaredErrors], splits: Iterable[str] = SPLITS) -> dict[str, dict]:
    """Return ``{split: {energy_rmse, forces_rmse, stress_rmse, num_frames}}`` for every split in ``splits``."""
    return {name: per_split.get(name, SquaredErrors()).rmse_mev() for name in splits}
