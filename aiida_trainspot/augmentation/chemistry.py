"""Chemistry: isolated atoms, species swaps between atoms, and alloys with exact compositions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from .errors import NotApplicableError
from .parameters import AlloyParameters


def isolated_atoms(species: Iterable[int], box: float) -> list[Atoms]:
    """Return one non-periodic atom per element of ``species``, centred in a cubic box of side ``box`` (Å)."""
    return [
        Atoms(numbers=[number], positions=[[box / 2] * 3], cell=np.eye(3) * box, pbc=False)
        for number in sorted(set(species))
    ]


def check_swappable(numbers: np.ndarray) -> None:
    """Raise :class:`NotApplicableError` unless ``numbers`` hold at least two elements."""
    if len(np.unique(numbers)) < 2:
        raise NotApplicableError('a single-element structure has no two atoms of different elements to swap')


def swap_count(numbers: np.ndarray, atom_fraction: float) -> int:
    """Return how many pairs of atoms of different elements to swap so that ``atom_fraction`` of the atoms change.

    Every swap changes two atoms, so the number of changed atoms is ``atom_fraction`` × N rounded to an even number,
    at least two, and at most what the composition allows (each pair needs two elements).
    """
    counts = np.unique(numbers, return_counts=True)[1]
    possible = min(len(numbers) // 2, len(numbers) - int(counts.max()))
    return min(max(1, round(atom_fraction * len(numbers) / 2)), possible)


def swap_species(atoms: Atoms, atom_fraction: float, rng: np.random.Generator) -> tuple[Atoms, np.ndarray]:
    """Return a copy of ``atoms`` in which :func:`swap_count` disjoint pairs of different elements swapped species.

    Each pair takes a random atom of the element most abundant among the atoms not swapped yet (so the count is
    always reached) and a random atom of another element. Return the pairs too (an array of shape ``(n, 2)``).
    """
    numbers = atoms.numbers
    check_swappable(numbers)
    free = np.ones(len(numbers), dtype=bool)
    pairs = np.zeros((swap_count(numbers, atom_fraction), 2), dtype=int)
    for pair in pairs:
        elements, counts = np.unique(numbers[free], return_counts=True)
        major = rng.choice(elements[counts == counts.max()])
        pair[0] = rng.choice(np.flatnonzero(free & (numbers == major)))
        pair[1] = rng.choice(np.flatnonzero(free & (numbers != major)))
        free[pair] = False
    swapped_numbers = numbers.copy()
    swapped_numbers[pairs[:, 0]], swapped_numbers[pairs[:, 1]] = numbers[pairs[:, 1]], numbers[pairs[:, 0]]
    swapped = atoms.copy()
    swapped.numbers = swapped_numbers
    return swapped, pairs


def site_counts(composition: np.ndarray, sites: int) -> np.ndarray:
    """Return integer counts summing to ``sites`` closest to ``composition`` × ``sites`` (largest remainders)."""
    composition = np.asarray(composition, dtype=float)
    exact = composition / composition.sum() * sites
    counts = np.floor(exact).astype(int)
    remainders = exact - counts
    counts[np.argsort(-remainders, kind='stable')[: sites - counts.sum()]] += 1
    return counts


def alloy_compositions(parameters: AlloyParameters, count: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``count`` compositions of ``alloy_species`` (rows summing to one).

    The given ``compositions`` are used in turn; otherwise two species are mixed at fractions evenly spaced from 0 to
    1 and more species at fractions drawn uniformly on the simplex (a flat Dirichlet distribution).
    """
    if parameters.compositions:
        given = np.asarray(parameters.compositions, dtype=float)
        return given[np.arange(count) % len(given)]
    if len(parameters.alloy_species) == 2:
        first = np.linspace(0.0, 1.0, count) if count > 1 else np.array([0.5])
        return np.column_stack([first, 1 - first])
    return rng.dirichlet(np.ones(len(parameters.alloy_species)), size=count)


def make_alloy(
    atoms: Atoms, parameters: AlloyParameters, composition: np.ndarray, rng: np.random.Generator
) -> tuple[Atoms, dict[str, Any]]:
    """Return a copy of ``atoms`` whose non-fixed sites hold ``alloy_species`` in ``composition``, at random sites.

    Atoms of ``fixed_species`` keep their element. The counts are exact (:func:`site_counts`).
    """
    fixed = [atomic_numbers[symbol] for symbol in parameters.fixed_species]
    sites = np.flatnonzero(~np.isin(atoms.numbers, fixed))
    if not len(sites):
        raise NotApplicableError(f'every atom belongs to `fixed_species` {list(parameters.fixed_species)}')
    counts = site_counts(composition, len(sites))
    numbers = atoms.numbers.copy()
    numbers[sites] = rng.permutation(np.repeat([atomic_numbers[symbol] for symbol in parameters.alloy_species], counts))
    alloy = atoms.copy()
    alloy.numbers = numbers
    drawn = {
        'composition': dict(zip(parameters.alloy_species, map(float, composition), strict=True)),
        'counts': dict(zip(parameters.alloy_species, map(int, counts), strict=True)),
    }
    return alloy, drawn
