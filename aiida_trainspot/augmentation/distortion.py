"""Random distortions: strain of the periodic directions, rattled atoms and vacancies.

A strain is a deformation gradient ``F`` applied to the cell and the positions alike (``scale_atoms=True``); it acts
as the identity on the directions normal to the periodic lattice, so that the vacuum of a slab or the shape of a
molecule is never stretched.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms

from .errors import NotApplicableError
from .geometry import nearest_neighbour_distances
from .parameters import DistortionParameters

MIN_ATOMS_LEFT = 2
"""A structure keeps at least this many atoms after its vacancies are made."""


def _periodic_basis(cell: np.ndarray, pbc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the periodic cell vectors followed by an orthonormal basis of their normal space (as columns).

    Also return an orthonormal basis of the periodic space itself (columns).
    """
    periodic = np.asarray(cell, dtype=float)[np.asarray(pbc, dtype=bool)].T
    count = periodic.shape[1]
    orthonormal = np.linalg.svd(periodic)[0] if count else np.eye(3)
    return np.column_stack([periodic, orthonormal[:, count:]]), orthonormal[:, :count]


def _random_rotation(dimension: int, rng: np.random.Generator) -> np.ndarray:
    """Return a rotation drawn uniformly (Haar measure) from the orthogonal group of ``dimension``."""
    q, r = np.linalg.qr(rng.normal(size=(dimension, dimension)))
    return q * np.sign(np.diag(r))


def strain_deformation(
    cell: np.ndarray, pbc: np.ndarray, parameters: DistortionParameters, rng: np.random.Generator
) -> np.ndarray:
    """Return a random deformation gradient ``F`` of the periodic directions of a cell.

    ``isotropic``: every periodic lattice vector stretches by one factor; ``anisotropic``: each by its own factor;
    ``shear``: a random symmetric ``F`` whose principal stretches, along random orthogonal axes of the periodic space,
    are drawn independently. Factors and principal stretches lie in [1 - ``max_compressive_strain``,
    1 + ``max_tensile_strain``]. A structure without periodic axes gets the identity.
    """
    basis, periodic_space = _periodic_basis(cell, pbc)
    count = periodic_space.shape[1]
    low, high = 1 - parameters.max_compressive_strain, 1 + parameters.max_tensile_strain
    if count == 0:
        return np.eye(3)
    stretches = rng.uniform(low, high, size=1 if parameters.strain_mode == 'isotropic' else count)
    stretches = np.broadcast_to(stretches, count)
    if parameters.strain_mode == 'shear':
        rotation = _random_rotation(count, rng)
        return np.eye(3) + periodic_space @ rotation @ np.diag(stretches - 1) @ rotation.T @ periodic_space.T
    return basis @ np.diag(np.concatenate([stretches, np.ones(3 - count)])) @ np.linalg.inv(basis)


def deform(atoms: Atoms, deformation: np.ndarray) -> Atoms:
    """Return a copy of ``atoms`` with the cell and the positions transformed by the deformation gradient."""
    deformed = atoms.copy()
    deformed.cell = atoms.cell.array @ deformation.T
    deformed.positions = atoms.positions @ deformation.T
    return deformed


def rattle(atoms: Atoms, fraction: float, rng: np.random.Generator) -> tuple[Atoms, np.ndarray]:
    """Return a copy of ``atoms`` with random displacements, and the displacements.

    Atom ``i`` moves by a length drawn uniformly in [0, ``fraction`` × its nearest-neighbour distance] along a direction
    drawn uniformly on the sphere (a normalised Gaussian vector, so the mean displacement is zero). An atom without a
    neighbour stays where it is.
    """
    if len(atoms) < 2:
        raise NotApplicableError('a single atom has no neighbour to scale its displacement by')
    neighbour_distances = nearest_neighbour_distances(atoms)
    max_lengths = fraction * np.where(np.isfinite(neighbour_distances), neighbour_distances, 0.0)
    directions = rng.normal(size=(len(atoms), 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    displacements = directions * (rng.uniform(size=len(atoms)) * max_lengths)[:, None]
    rattled = atoms.copy()
    rattled.positions = atoms.positions + displacements
    return rattled, displacements


def remove_random_atoms(atoms: Atoms, count: int, rng: np.random.Generator) -> tuple[Atoms, np.ndarray]:
    """Return a copy of ``atoms`` without ``count`` atoms chosen at random, and the indices removed (sorted)."""
    if len(atoms) - count < MIN_ATOMS_LEFT:
        raise NotApplicableError(
            f'{len(atoms)} atoms cannot lose {count} to vacancies and keep at least {MIN_ATOMS_LEFT}'
        )
    removed = np.sort(rng.choice(len(atoms), size=count, replace=False))
    return atoms[np.setdiff1d(np.arange(len(atoms)), removed)], removed


def distortions(
    atoms: Atoms, parameters: DistortionParameters, rng: np.random.Generator
) -> list[tuple[Atoms, dict[str, Any]]]:
    """Return ``n_configs`` strained and rattled copies of ``atoms``, with what was drawn for each.

    Each copy is strained first, then rattled relative to its own (strained) nearest-neighbour distances; exactly
    ``round(vacancy_fraction × n_configs)`` copies, chosen at random, then lose ``vacancies_per_config`` atoms.
    """
    if len(atoms) < 2:
        raise NotApplicableError('a single atom has no neighbour to scale its displacement by')
    vacancy_configs = rng.choice(
        parameters.n_configs, size=round(parameters.vacancy_fraction * parameters.n_configs), replace=False
    )
    products = []
    for config in range(parameters.n_configs):
        deformation = strain_deformation(atoms.cell.array, atoms.pbc, parameters, rng)
        distorted, displacements = rattle(deform(atoms, deformation), parameters.rattle_fraction, rng)
        drawn = {
            'strain_mode': parameters.strain_mode,
            'deformation_gradient': deformation.tolist(),
            'rattle_fraction': parameters.rattle_fraction,
            'max_displacement': float(np.linalg.norm(displacements, axis=1).max()),
            'removed_atoms': [],
        }
        if config in vacancy_configs:
            try:
                distorted, removed = remove_random_atoms(distorted, parameters.vacancies_per_config, rng)
                drawn['removed_atoms'] = removed.tolist()
            except NotApplicableError as exception:
                drawn['vacancies_skipped'] = str(exception)
        products.append((distorted, drawn))
    return products
