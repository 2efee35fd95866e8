"""Slabs: bulk structures cut along crystallographic planes, thick enough, wide enough and padded with vacuum."""

from __future__ import annotations

from typing import Any

from ase import Atoms
from ase.build import surface

from .errors import NotApplicableError
from .geometry import normal_extents, pad_vacuum
from .parameters import SlabParameters
from .supercell import supercell_repeats


def slab_thickness(slab: Atoms) -> float:
    """Return the extent of the atoms of a slab along the normal of its surface (the third cell vector's axis)."""
    return float(normal_extents(slab)[2])


def _require_bulk(bulk: Atoms) -> None:
    """Raise :class:`NotApplicableError` unless ``bulk`` is periodic along its three cell vectors."""
    if not bulk.pbc.all():
        raise NotApplicableError(f'slabs are cut from bulk (3D periodic) structures; pbc is {bulk.pbc.tolist()}')


def cut_slab(
    bulk: Atoms, miller_index: tuple[int, int, int], parameters: SlabParameters, vacuum: float
) -> tuple[Atoms, dict[str, Any]]:
    """Return the slab of ``bulk`` along ``miller_index`` (of the bulk cell), and how it was built.

    Layers (repeats of the surface cell along the normal, :func:`ase.build.surface`) are added until the slab is
    ``min_thickness`` thick or one more would exceed ``max_atoms``; the slab is then replicated in plane towards
    ``min_length`` within ``max_atoms`` and gets a gap of ``vacuum`` along the normal. Periodic in plane only.
    """
    _require_bulk(bulk)
    slab = surface(bulk, miller_index, 1, periodic=False)
    per_layer = len(slab)
    if per_layer > parameters.max_atoms:
        raise NotApplicableError(
            f'one {miller_index} layer has {per_layer} atoms, more than `max_atoms` ({parameters.max_atoms})'
        )
    layers = 1
    while slab_thickness(slab) < parameters.min_thickness and per_layer * (layers + 1) <= parameters.max_atoms:
        layers += 1
        slab = surface(bulk, miller_index, layers, periodic=False)
    thickness = slab_thickness(slab)
    repeats = supercell_repeats(slab, parameters.min_length, parameters.max_atoms)
    slab = pad_vacuum(Atoms(numbers=slab.numbers, positions=slab.positions, cell=slab.cell, pbc=slab.pbc), vacuum)
    built = {'miller_index': list(miller_index), 'layers': layers, 'thickness': thickness, 'repeats': list(repeats)}
    return slab.repeat(repeats), built


def slabs(
    bulk: Atoms, parameters: SlabParameters, vacuum: float
) -> tuple[list[tuple[Atoms, dict[str, Any]]], list[str]]:
    """Return one slab of ``bulk`` per Miller index of ``parameters`` (see :func:`cut_slab`), and why some are missing.

    Raise :class:`NotApplicableError` if ``bulk`` is not periodic along three axes.
    """
    _require_bulk(bulk)
    products, reasons = [], []
    for miller_index in parameters.miller_indices:
        try:
            products.append(cut_slab(bulk, miller_index, parameters, vacuum))
        except NotApplicableError as exception:
            reasons.append(str(exception))
    return products, reasons
