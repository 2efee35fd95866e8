"""Geometry of any cell (orthogonal or not, periodic along any axes): heights, neighbours, close contacts, vacuum.

A *height* is the distance between neighbouring lattice planes: along periodic axis ``i`` it is the part of cell vector
``i`` perpendicular to the other periodic vectors, i.e. the shortest distance between an atom and its periodic image
that a sphere of that diameter still fits in. A *gap* along a non-periodic axis is the empty space between the atoms
and their images along the normal of the plane of the two other cell vectors.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.geometry.cell import complete_cell
from ase.neighborlist import neighbor_list

NEIGHBOUR_SEARCH_START = 3.0
"""Å: first cutoff of the nearest-neighbour search, doubled until every atom has a neighbour."""

NEIGHBOUR_SEARCH_LIMIT = 24.0
"""Å: an atom with no neighbour within this distance has none (an isolated atom)."""

GAP_TOLERANCE = 1e-8
"""Å: a gap this much short of the wanted vacuum counts as enough (round-off of a previous padding)."""


def periodic_heights(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Return the height of the periodic lattice along each periodic axis (``inf`` along non-periodic ones).

    Only the periodic vectors count, so a non-periodic vector (even a zero one) plays no role.
    """
    cell, pbc = np.asarray(cell, dtype=float), np.asarray(pbc, dtype=bool)
    heights = np.full(3, np.inf)
    for axis in np.flatnonzero(pbc):
        others = cell[pbc & (np.arange(3) != axis)]
        vector = cell[axis]
        if len(others):
            coefficients = np.linalg.lstsq(others.T, vector, rcond=None)[0]
            vector = vector - others.T @ coefficients
        heights[axis] = np.linalg.norm(vector)
    return heights


def plane_spacings(cell: np.ndarray) -> np.ndarray:
    """Return the three plane spacings ``V / |a_j × a_k|`` of a non-degenerate cell."""
    cell = np.asarray(cell, dtype=float)
    volume = abs(np.linalg.det(cell))
    return np.array([volume / np.linalg.norm(np.cross(cell[axis - 2], cell[axis - 1])) for axis in range(3)])


def normal_extents(atoms: Atoms) -> np.ndarray:
    """Return, per axis, the extent of the atoms along the normal of the plane of the other two cell vectors.

    Missing (zero) cell vectors are replaced by orthogonal unit vectors first, as :func:`ase.geometry.complete_cell`
    does, so that a molecule without a cell has its extents along x, y and z.
    """
    cell = complete_cell(atoms.cell.array)
    scaled = np.linalg.solve(cell.T, atoms.positions.T).T
    return np.ptp(scaled, axis=0) * plane_spacings(cell)


def cell_problem(atoms: Atoms) -> str | None:
    """Return why the cell of ``atoms`` cannot be used (a periodic axis without height, a flat cell), or ``None``."""
    heights = periodic_heights(atoms.cell.array, atoms.pbc)
    flat = [int(axis) for axis in np.flatnonzero(atoms.pbc) if heights[axis] < 1e-6]
    if flat:
        return f'the cell has no extent along periodic axes {flat}'
    with np.errstate(invalid='ignore', divide='ignore'):  # completing two parallel vectors divides by zero
        volume = abs(np.linalg.det(complete_cell(atoms.cell.array)))
    if not volume > 1e-9:
        return 'the cell vectors are linearly dependent'
    return None


def nearest_neighbour_distances(atoms: Atoms) -> np.ndarray:
    """Return each atom's distance to its nearest neighbour, periodic images included (``inf`` if it has none)."""
    distances = np.full(len(atoms), np.inf)
    cutoff = NEIGHBOUR_SEARCH_START
    while True:
        first, distance = neighbor_list('id', atoms, cutoff)
        np.minimum.at(distances, first, distance)
        if np.isfinite(distances).all() or cutoff >= NEIGHBOUR_SEARCH_LIMIT:
            return distances
        cutoff = min(2 * cutoff, NEIGHBOUR_SEARCH_LIMIT)


def closest_contact(atoms: Atoms, covalent_fraction: float) -> tuple[int, int, float] | None:
    """Return the closest pair ``(i, j, distance)`` nearer than ``covalent_fraction`` × the sum of covalent radii.

    Periodic images count, including an atom's own image in a cell that is too small. Return ``None`` if no pair is
    that close.
    """
    radii = covalent_fraction * covalent_radii[atoms.numbers]
    first, second, distance = neighbor_list('ijd', atoms, radii)
    if not len(distance):
        return None
    closest = int(np.argmin(distance))
    return int(first[closest]), int(second[closest]), float(distance[closest])


def contact_problem(atoms: Atoms, covalent_fraction: float) -> str | None:
    """Return a sentence naming the closest pair of atoms that :func:`closest_contact` finds, or ``None``."""
    contact = closest_contact(atoms, covalent_fraction)
    if contact is None:
        return None
    first, second, distance = contact
    symbols = atoms.get_chemical_symbols()
    limit = covalent_fraction * (covalent_radii[atoms.numbers[first]] + covalent_radii[atoms.numbers[second]])
    return (
        f'atoms {first} ({symbols[first]}) and {second} ({symbols[second]}) are {distance:.3f} Å apart, closer than '
        f'{covalent_fraction} × the sum of their covalent radii ({limit:.3f} Å)'
    )


def pad_vacuum(atoms: Atoms, vacuum: float) -> Atoms:
    """Return a copy with a gap of at least ``vacuum`` (Å) along every non-periodic axis, the atoms centred there.

    A non-periodic cell vector is lengthened (never shortened) until the gap between the atoms and their images,
    measured along the normal of the plane of the other two vectors, is ``vacuum``; a zero vector first becomes an
    orthogonal one. Periodic vectors and positions along periodic axes are left alone.
    """
    padded = atoms.copy()
    if padded.pbc.all():
        return padded
    cell = complete_cell(padded.cell.array)
    spacings, extents = plane_spacings(cell), normal_extents(padded)
    for axis in np.flatnonzero(~padded.pbc):
        if spacings[axis] - extents[axis] < vacuum - GAP_TOLERANCE:
            # Scaling one vector leaves the planes (and so the spacings) of the other axes unchanged.
            cell[axis] *= (extents[axis] + vacuum) / spacings[axis]
    scaled = np.linalg.solve(cell.T, padded.positions.T).T
    for axis in np.flatnonzero(~padded.pbc):
        scaled[:, axis] += 0.5 - (scaled[:, axis].min() + scaled[:, axis].max()) / 2
    padded.cell = cell
    padded.positions = scaled @ cell
    return padded
