"""The parameters of each augmentation operation: their defaults (the TrainsPot paper's) and their validation.

Each dataclass is the one place where an operation's defaults and bounds are written down: the kernels take it, the
calculation functions build it from a ``Dict`` and the work chain's port validators turn its ``ValueError`` into a
message. Every message names the offending parameter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from ase.data import atomic_numbers

MIN_CELL_LENGTH = 18.0
"""Å: smallest distance between periodic images wanted in a supercell, twice the MACE default receptive field."""

MAX_ATOMS = 450
"""Largest number of atoms in a supercell or a slab."""

STRAIN_MODES = ('isotropic', 'anisotropic', 'shear')
"""How a cell is strained: one factor, one factor per periodic lattice vector, or a random symmetric tensor."""

ParametersType = TypeVar('ParametersType')


def _check_number(name: str, value: Any, integer: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a finite number (an integer if ``integer``)."""
    wanted = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, wanted) or not math.isfinite(value):
        kind = 'an integer' if integer else 'a finite number'
        raise ValueError(f'`{name}` must be {kind}, got {value!r}')


def check_positive(name: str, value: Any, integer: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a number larger than zero."""
    _check_number(name, value, integer)
    if value <= 0:
        raise ValueError(f'`{name}` must be positive, got {value!r}')


def check_fraction(name: str, value: Any, upper_open: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` lies in [0, 1] (or [0, 1) if ``upper_open``)."""
    _check_number(name, value)
    if not 0 <= value <= 1 or (upper_open and value == 1):
        interval = '[0, 1)' if upper_open else '[0, 1]'
        raise ValueError(f'`{name}` must lie in {interval}, got {value!r}')


def check_elements(name: str, symbols: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``symbols`` are distinct chemical symbols."""
    unknown = [symbol for symbol in symbols if symbol not in atomic_numbers or symbol == 'X']
    if unknown:
        raise ValueError(f'`{name}` has unknown elements {unknown}')
    if len(set(symbols)) != len(symbols):
        raise ValueError(f'`{name}` lists an element twice: {list(symbols)}')


@dataclass(frozen=True)
class SupercellParameters:
    """Replicate periodic structures until every periodic height reaches ``min_length`` (Å), within ``max_atoms``."""

    min_length: float = MIN_CELL_LENGTH
    max_atoms: int = MAX_ATOMS

    def __post_init__(self) -> None:
        """Check the values."""
        check_positive('min_length', self.min_length)
        check_positive('max_atoms', self.max_atoms, integer=True)


@dataclass(frozen=True)
class DistortionParameters:
    """Strained and rattled copies of each structure, some with vacancies.

    ``n_configs`` copies per structure; each atom moves by up to ``rattle_fraction`` of its nearest-neighbour distance;
    the periodic directions stretch by a factor in [1 - ``max_compressive_strain``, 1 + ``max_tensile_strain``] the way
    ``strain_mode`` says; ``vacancy_fraction`` of the copies lose ``vacancies_per_config`` random atoms.
    """

    n_configs: int = 50
    rattle_fraction: float = 0.3
    max_compressive_strain: float = 0.2
    max_tensile_strain: float = 0.6
    strain_mode: str = 'isotropic'
    vacancy_fraction: float = 0.3
    vacancies_per_config: int = 2

    def __post_init__(self) -> None:
        """Check the values."""
        check_positive('n_configs', self.n_configs, integer=True)
        check_fraction('rattle_fraction', self.rattle_fraction)
        check_fraction('max_compressive_strain', self.max_compressive_strain, upper_open=True)
        check_fraction('max_tensile_strain', self.max_tensile_strain)
        if self.strain_mode not in STRAIN_MODES:
            raise ValueError(f'`strain_mode` must be one of {STRAIN_MODES}, got {self.strain_mode!r}')
        check_fraction('vacancy_fraction', self.vacancy_fraction)
        check_positive('vacancies_per_config', self.vacancies_per_config, integer=True)


@dataclass(frozen=True)
class ClusterParameters:
    """``n_clusters`` random clusters of ``min_atoms`` to ``max_atoms`` atoms of the dataset's species.

    Each atom sits between ``distance`` and ``distance_factor`` × ``distance`` (Å) from the atom it grew from, and at
    least ``distance`` from every other atom. The paper's formula lost its factor in the text we have; √3 is the largest
    distance of the reference implementation, which drew the offset in a cube of half side ``distance``.
    """

    n_clusters: int = 20
    min_atoms: int = 2
    max_atoms: int = 10
    distance: float = 1.5
    distance_factor: float = math.sqrt(3.0)

    def __post_init__(self) -> None:
        """Check the values."""
        check_positive('n_clusters', self.n_clusters, integer=True)
        check_positive('min_atoms', self.min_atoms, integer=True)
        check_positive('max_atoms', self.max_atoms, integer=True)
        if self.min_atoms < 2:
            raise ValueError(f'`min_atoms` must be at least 2 (one atom is an isolated atom), got {self.min_atoms}')
        if self.max_atoms < self.min_atoms:
            raise ValueError(f'`max_atoms` ({self.max_atoms}) must not be smaller than `min_atoms` ({self.min_atoms})')
        check_positive('distance', self.distance)
        _check_number('distance_factor', self.distance_factor)
        if self.distance_factor < 1:
            raise ValueError(f'`distance_factor` must be at least 1, got {self.distance_factor!r}')


@dataclass(frozen=True)
class SlabParameters:
    """Slabs cut from bulk structures along each of ``miller_indices`` (indices of the input cell).

    Layers are added until the slab is ``min_thickness`` (Å) thick, then the slab is replicated in plane until its
    periodic heights reach ``min_length`` (Å), never exceeding ``max_atoms``.
    """

    miller_indices: tuple[tuple[int, int, int], ...] = ((1, 1, 1), (1, 1, 0), (1, 0, 0))
    min_thickness: float = 10.0
    max_atoms: int = MAX_ATOMS
    min_length: float = MIN_CELL_LENGTH

    def __post_init__(self) -> None:
        """Check the values and store the Miller indices as tuples."""
        try:
            indices = tuple(tuple(index) for index in self.miller_indices)
        except TypeError:
            raise ValueError(f'`miller_indices` must be a list of [h, k, l], got {self.miller_indices!r}') from None
        if not indices:
            raise ValueError('`miller_indices` must list at least one [h, k, l]')
        for index in indices:
            if len(index) != 3 or any(isinstance(i, bool) or not isinstance(i, int) for i in index) or not any(index):
                raise ValueError(f'`miller_indices` must hold three integers, not all zero: got {list(index)}')
        object.__setattr__(self, 'miller_indices', indices)
        check_positive('min_thickness', self.min_thickness)
        check_positive('max_atoms', self.max_atoms, integer=True)
        check_positive('min_length', self.min_length)


@dataclass(frozen=True)
class SubstitutionParameters:
    """Swap the species of pairs of atoms of different elements.

    ``structure_fraction`` of the multi-species structures are chosen; in each, ``atom_fraction`` of the atoms change
    species (rounded to an even number, since every exchange involves two atoms, and at least one exchange).
    """

    structure_fraction: float = 0.2
    atom_fraction: float = 0.2

    def __post_init__(self) -> None:
        """Check the values."""
        check_fraction('structure_fraction', self.structure_fraction)
        check_positive('atom_fraction', self.atom_fraction)
        check_fraction('atom_fraction', self.atom_fraction)


@dataclass(frozen=True)
class AlloyParameters:
    """``n_structures`` alloys: every site whose element is not in ``fixed_species`` takes one of ``alloy_species``.

    ``compositions`` are the atom fractions of ``alloy_species`` (each sums to one), used in turn; without them the
    compositions span 0 to 1: evenly spaced for two species, drawn uniformly on the simplex for more.
    """

    alloy_species: tuple[str, ...] = ()
    fixed_species: tuple[str, ...] = ()
    n_structures: int = 100
    compositions: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self) -> None:
        """Check the values and store the lists as tuples."""
        for name in ('alloy_species', 'fixed_species'):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(symbol, str) for symbol in value):
                raise ValueError(f'`{name}` must be a list of chemical symbols, got {value!r}')
            object.__setattr__(self, name, tuple(value))
            check_elements(name, getattr(self, name))
        overlap = sorted(set(self.alloy_species) & set(self.fixed_species))
        if overlap:
            raise ValueError(f'`alloy_species` and `fixed_species` share {overlap}: an element is mixed or fixed')
        if len(self.alloy_species) == 1:
            raise ValueError(f'`alloy_species` needs at least two elements to mix, got {list(self.alloy_species)}')
        check_positive('n_structures', self.n_structures, integer=True)
        object.__setattr__(self, 'compositions', tuple(tuple(fractions) for fractions in self.compositions))
        for fractions in self.compositions:
            self._check_composition(fractions)

    def _check_composition(self, fractions: tuple[float, ...]) -> None:
        """Raise ``ValueError`` unless ``fractions`` is a composition of ``alloy_species``."""
        if len(fractions) != len(self.alloy_species):
            raise ValueError(
                f'`compositions` entry {list(fractions)} needs one fraction per element of `alloy_species` '
                f'{list(self.alloy_species)}'
            )
        for fraction in fractions:
            check_fraction('compositions', fraction)
        if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
            raise ValueError(f'`compositions` entry {list(fractions)} must sum to 1, got {sum(fractions)}')


@dataclass(frozen=True)
class DistanceFilterParameters:
    """Drop structures with two atoms closer than ``covalent_fraction`` × the sum of their covalent radii."""

    covalent_fraction: float = 0.5

    def __post_init__(self) -> None:
        """Check the values."""
        check_positive('covalent_fraction', self.covalent_fraction)
        check_fraction('covalent_fraction', self.covalent_fraction)


def parameters_from_mapping(cls: type[ParametersType], mapping: Mapping[str, Any] | None) -> ParametersType:
    """Return ``cls`` built from ``mapping`` (defaults for absent keys); ``ValueError`` names unknown keys."""
    mapping = dict(mapping or {})
    known = {field.name for field in fields(cls)}
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise ValueError(f'unknown parameters {unknown}: expected some of {sorted(known)}')
    return cls(**mapping)


def parameters_as_dict(parameters: Any) -> dict[str, Any]:
    """Return the parameters as a JSON-serialisable dictionary (tuples become lists)."""

    def listed(value: Any) -> Any:
        return [listed(item) for item in value] if isinstance(value, tuple | list) else value

    return {name: listed(value) for name, value in asdict(parameters).items()}
