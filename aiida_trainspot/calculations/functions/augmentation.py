"""Calculation functions of dataset augmentation: every augmented dataset is made by one, so its provenance is kept.

Each function that makes structures returns ``structures`` (``PESData``) and ``skipped`` (``Dict``: index of an input
frame → why the operation did not apply to it). A new frame has ``origin`` set to the operation's kind of structure
and ``info`` = ``{'operation': ..., 'parameters': what was drawn, 'parent': index of the input frame it was made from,
or None}``. Labels are never carried over: a new structure has none. The kernels are in
:mod:`aiida_trainspot.augmentation`; the parameters ``Dict`` of each function holds the fields of its dataclass there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from aiida.engine import calcfunction
from aiida.orm import Dict, Float, Int, List
from ase import Atoms
from ase.data import atomic_numbers

from ...augmentation import (
    AlloyParameters,
    ClusterParameters,
    DistanceFilterParameters,
    DistortionParameters,
    NotApplicableError,
    SlabParameters,
    SubstitutionParameters,
    SupercellParameters,
    alloy_compositions,
    check_swappable,
    contact_problem,
    distortions,
    isolated_atoms,
    make_alloy,
    pad_vacuum,
    parameters_from_mapping,
    random_clusters,
    replicate,
    slabs,
    structure_rng,
    swap_species,
)
from ...augmentation.parameters import check_positive
from ...data import PESData
from ...dataset import Frame

Product = tuple[Atoms, dict[str, Any]]
"""A new structure and what was drawn to make it."""


def atoms_of(frame: Frame) -> Atoms:
    """Return the bare structure of ``frame`` (no labels, no metadata)."""
    return Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)


def _new_frame(atoms: Atoms, origin: str, operation: str, drawn: dict[str, Any], parent: int | None) -> Frame:
    """Return the unlabelled frame of a new structure with its provenance in ``info``."""
    info = {'operation': operation, 'parameters': drawn, 'parent': parent}
    return Frame(
        numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell.array, pbc=atoms.pbc, origin=origin, info=info
    )


def _augmented(
    structures: PESData,
    origin: str,
    operation: str,
    make: Callable[[int, Atoms], tuple[list[Product], list[str]]],
) -> dict[str, PESData | Dict]:
    """Return the outputs of an operation that makes new structures from each frame of ``structures``.

    ``make(index, atoms)`` returns the new structures and the reasons why some could not be made; it raises
    :class:`NotApplicableError` if the operation does not apply to the frame at all.
    """
    skipped: dict[str, str] = {}

    def frames() -> Iterator[Frame]:
        for index, frame in enumerate(structures.iter_frames()):
            try:
                products, reasons = make(index, atoms_of(frame))
            except NotApplicableError as exception:
                products, reasons = [], [str(exception)]
            if reasons:
                skipped[str(index)] = '; '.join(reasons)
            for atoms, drawn in products:
                yield _new_frame(atoms, origin, operation, drawn, index)

    dataset = PESData.from_frames(frames())
    return {'structures': dataset, 'skipped': Dict(skipped)}


def _positive(name: str, value: Float) -> float:
    """Return the value of ``value``, or raise ``ValueError`` naming ``name`` unless it is positive."""
    check_positive(name, value.value)
    return value.value


@calcfunction
def augment_supercell(structures: PESData, parameters: Dict) -> dict[str, PESData | Dict]:
    """Return the frames replicated into supercells (origin ``input``: these are the inputs the others start from)."""
    supercell = parameters_from_mapping(SupercellParameters, parameters.get_dict())

    def make(_, atoms: Atoms) -> tuple[list[Product], list[str]]:
        replicated, repeats = replicate(atoms, supercell)
        return [(replicated, {'repeats': list(repeats)})], []

    return _augmented(structures, 'input', 'supercell', make)


@calcfunction
def augment_isolated_atoms(
    structures: PESData, vacuum: Float, species: List | None = None
) -> dict[str, PESData | Dict]:
    """Return one isolated atom per element of ``structures`` and of ``species``, in a cubic box of side ``vacuum``."""
    box = _positive('vacuum', vacuum)
    symbols = set(structures.species) | set(species.get_list() if species is not None else [])
    unknown = sorted(symbols - set(atomic_numbers))
    if unknown:
        raise ValueError(f'`species` has unknown elements {unknown}')
    products = isolated_atoms([atomic_numbers[symbol] for symbol in symbols], box)
    frames = [_new_frame(atoms, 'isolated_atom', 'isolated_atoms', {'box': box}, None) for atoms in products]
    return {'structures': PESData.from_frames(frames), 'skipped': Dict({})}


@calcfunction
def augment_rattle_strain(structures: PESData, parameters: Dict, seed: Int) -> dict[str, PESData | Dict]:
    """Return strained and rattled copies of each frame, some with vacancies (:func:`~.distortions`)."""
    distortion = parameters_from_mapping(DistortionParameters, parameters.get_dict())

    def make(index: int, atoms: Atoms) -> tuple[list[Product], list[str]]:
        products = distortions(atoms, distortion, structure_rng(seed.value, index))
        reasons = sorted({drawn.pop('vacancies_skipped') for _, drawn in products if 'vacancies_skipped' in drawn})
        return products, [f'no vacancies: {reason}' for reason in reasons]

    return _augmented(structures, 'rattle_strain', 'rattle_strain', make)


@calcfunction
def augment_clusters(structures: PESData, parameters: Dict, seed: Int) -> dict[str, PESData | Dict]:
    """Return random non-periodic clusters of the elements of ``structures`` (no parent frame)."""
    cluster = parameters_from_mapping(ClusterParameters, parameters.get_dict())
    numbers = [atomic_numbers[symbol] for symbol in structures.species]
    products = random_clusters(numbers, cluster, np.random.default_rng(seed.value))
    frames = [_new_frame(atoms, 'cluster', 'clusters', drawn, None) for atoms, drawn in products]
    return {'structures': PESData.from_frames(frames), 'skipped': Dict({})}


@calcfunction
def augment_slabs(structures: PESData, parameters: Dict, vacuum: Float) -> dict[str, PESData | Dict]:
    """Return the slabs of each bulk frame, with a gap of ``vacuum`` (Å) along their normal."""
    slab = parameters_from_mapping(SlabParameters, parameters.get_dict())
    gap = _positive('vacuum', vacuum)
    return _augmented(structures, 'slab', 'slabs', lambda _, atoms: slabs(atoms, slab, gap))


@calcfunction
def augment_substitution(structures: PESData, parameters: Dict, seed: Int) -> dict[str, PESData | Dict]:
    """Return copies of a random ``structure_fraction`` of the multi-element frames with species swapped.

    Exactly ``round(structure_fraction × n)`` of the ``n`` frames with two elements or more are chosen; single-element
    frames are skipped with their reason.
    """
    substitution = parameters_from_mapping(SubstitutionParameters, parameters.get_dict())
    eligible = [index for index, frame in enumerate(structures.iter_frames()) if len(np.unique(frame.numbers)) > 1]
    rng = np.random.default_rng(seed.value)
    chosen = set(rng.choice(eligible, size=round(substitution.structure_fraction * len(eligible)), replace=False))

    def make(index: int, atoms: Atoms) -> tuple[list[Product], list[str]]:
        check_swappable(atoms.numbers)
        if index not in chosen:
            return [], []
        swapped, pairs = swap_species(atoms, substitution.atom_fraction, structure_rng(seed.value, index))
        return [(swapped, {'atom_fraction': substitution.atom_fraction, 'swapped_pairs': pairs.tolist()})], []

    return _augmented(structures, 'substitution', 'substitution', make)


@calcfunction
def augment_alloys(structures: PESData, parameters: Dict, seed: Int) -> dict[str, PESData | Dict]:
    """Return ``n_structures`` alloys, made from the frames with sites to mix in turn (:func:`~.make_alloy`)."""
    alloy = parameters_from_mapping(AlloyParameters, parameters.get_dict())
    if not alloy.alloy_species:
        raise ValueError('`alloy_species` must name the elements to mix')
    fixed = [atomic_numbers[symbol] for symbol in alloy.fixed_species]
    mixable = [index for index, frame in enumerate(structures.iter_frames()) if not np.isin(frame.numbers, fixed).all()]
    compositions = alloy_compositions(alloy, alloy.n_structures, np.random.default_rng(seed.value))
    assigned = {index: [] for index in mixable}
    for number in range(alloy.n_structures if mixable else 0):
        assigned[mixable[number % len(mixable)]].append(number)

    def make(index: int, atoms: Atoms) -> tuple[list[Product], list[str]]:
        if index not in assigned:
            raise NotApplicableError(f'every atom belongs to `fixed_species` {list(alloy.fixed_species)}')
        products = [
            make_alloy(atoms, alloy, compositions[number], structure_rng(seed.value, number))
            for number in assigned[index]
        ]
        return products, []

    return _augmented(structures, 'alloy', 'alloys', make)


@calcfunction
def augment_vacuum_padding(structures: PESData, vacuum: Float) -> dict[str, PESData]:
    """Return the frames with a gap of at least ``vacuum`` (Å) along each non-periodic axis (metadata unchanged)."""
    gap = _positive('vacuum', vacuum)

    def frames() -> Iterator[Frame]:
        for frame in structures.iter_frames():
            padded = pad_vacuum(atoms_of(frame), gap)
            frame.positions, frame.cell = padded.positions, padded.cell.array
            yield frame

    return {'structures': PESData.from_frames(frames())}


@calcfunction
def augment_distance_filter(structures: PESData, parameters: Dict) -> dict[str, PESData | Dict]:
    """Return the frames without two atoms closer than ``covalent_fraction`` × their covalent radii (unchanged)."""
    distance_filter = parameters_from_mapping(DistanceFilterParameters, parameters.get_dict())
    removed: dict[str, str] = {}

    def frames() -> Iterator[Frame]:
        for index, frame in enumerate(structures.iter_frames()):
            problem = contact_problem(atoms_of(frame), distance_filter.covalent_fraction)
            if problem is None:
                yield frame
            else:
                removed[str(index)] = problem

    dataset = PESData.from_frames(frames())
    return {'structures': dataset, 'skipped': Dict(removed)}
