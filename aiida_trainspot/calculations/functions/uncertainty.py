"""Calculation functions of committee uncertainty: calibrate the disagreement, select the uncertain frames.

Both read the committee columns that committee evaluation stores in a dataset: per frame ``committee_energy``
``(M,)`` eV, ``committee_stress`` ``(M, 3, 3)`` eV/Å³ and the metrics of :mod:`aiida_trainspot.uncertainty.metrics`,
per atom ``committee_forces`` ``(M, 3)`` eV/Å. The science is in :mod:`aiida_trainspot.uncertainty`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from aiida.engine import calcfunction
from aiida.orm import Dict, Int, Str
from ase.data import atomic_numbers

from ...data import PESData
from ...dataset import FrameBatch, iter_atoms_from_batch
from ...dataset.frame import SPLITS as FRAME_SPLITS
from ...uncertainty.accuracy import SPLITS, SquaredErrors, accumulate_frame, split_rmse
from ...uncertainty.calibration import (
    DEFAULT_TOLERANCES,
    PROPERTIES,
    UNITS,
    energy_errors,
    fit_through_origin,
    force_errors,
    stress_errors,
    threshold_from_tolerance,
    validate_tolerances,
)
from ...uncertainty.scores import detection_scores
from ...uncertainty.selection import SELECTION_METHODS, above_threshold, cap_selection, structure_descriptor


def _committee_errors(batch: FrameBatch) -> dict[str, np.ndarray]:
    """Return per property the true error of the committee mean on each frame of ``batch`` (NaN where undefined)."""
    energies = batch.frame_arrays['committee_energy']
    stresses = batch.frame_arrays.get('committee_stress')
    return {
        'energy': energy_errors(energies.mean(axis=1), batch.energy, batch.natoms),
        'forces': force_errors(batch.atom_arrays['committee_forces'].mean(axis=1), batch.forces, batch.natoms),
        'stress': np.full(len(batch), np.nan)
        if stresses is None
        else stress_errors(stresses.mean(axis=1), batch.stress),
    }


def _require_columns(batch: FrameBatch, frame_columns: list[str], atom_columns: list[str]) -> None:
    """Raise ``ValueError`` naming the committee columns that ``batch`` lacks (stress ones may be absent)."""
    optional = ('committee_stress', PROPERTIES['stress'])
    missing = [name for name in frame_columns if name not in batch.frame_arrays and name not in optional]
    missing += [name for name in atom_columns if name not in batch.atom_arrays]
    if missing:
        raise ValueError(f'the dataset has no committee columns {missing}: evaluate it with the committee first')


def _labelled_columns(dataset: PESData) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Return per property the disagreement and the true error of the labelled frames with committee predictions."""
    disagreements: dict[str, list[np.ndarray]] = {name: [] for name in PROPERTIES}
    errors: dict[str, list[np.ndarray]] = {name: [] for name in PROPERTIES}
    for batch in dataset.iter_batches():
        _require_columns(batch, ['committee_energy', *PROPERTIES.values()], ['committee_forces'])
        predicted = np.isfinite(batch.frame_arrays['committee_energy']).all(axis=1)
        block = batch.take(np.flatnonzero(batch.labelled & predicted))
        for name, values in _committee_errors(block).items():
            errors[name].append(values)
            disagreements[name].append(block.frame_arrays.get(PROPERTIES[name], np.full(len(block), np.nan)))
    joined = [
        {name: np.concatenate(parts or [np.zeros(0)]) for name, parts in columns.items()}
        for columns in (disagreements, errors)
    ]
    return joined[0], joined[1]


@calcfunction
def calibrate_committee(dataset: PESData, tolerances: Dict | None = None) -> Dict:
    """Return the calibration of the committee disagreement of ``dataset`` against its true errors.

    Per property (energy, forces, stress; see :mod:`aiida_trainspot.uncertainty.calibration`), on the labelled frames
    that carry committee predictions: the fit ``error = slope · disagreement`` (``slope``, ``r2``, ``num_frames``),
    the ``tolerance`` (``tolerances``, default :data:`~aiida_trainspot.uncertainty.calibration.DEFAULT_TOLERANCES`,
    in eV/atom, eV/Å, eV/Å³), the disagreement ``threshold = tolerance / slope`` and the ``scores`` (TPR, PPV and
    counts) of that threshold on the same frames. ``thresholds`` gathers the thresholds; a property that cannot be
    fitted (too few frames, e.g. no stress on molecules) has ``None`` there and no scores.
    """
    chosen = {**DEFAULT_TOLERANCES, **(tolerances.get_dict() if tolerances is not None else {})}
    message = validate_tolerances(chosen)
    if message:
        raise ValueError(f'`tolerances`: {message}')
    disagreements, errors = _labelled_columns(dataset)
    if not len(disagreements['energy']):
        raise ValueError('the dataset has no labelled frame with committee predictions to calibrate on')
    result: dict = {'thresholds': {}}
    for name, column in PROPERTIES.items():
        fit = fit_through_origin(disagreements[name], errors[name])
        threshold = threshold_from_tolerance(fit, chosen[name])
        scores = None
        if threshold is not None:
            scores = detection_scores(disagreements[name], errors[name], threshold, chosen[name]).as_dict()
        result[name] = {
            'disagreement': column,
            'units': UNITS[name],
            'tolerance': chosen[name],
            **(fit.as_dict() if fit is not None else {'slope': None, 'r2': None, 'num_frames': 0}),
            'threshold': threshold,
            'scores': scores,
        }
        result['thresholds'][name] = threshold
    return Dict(result)


def _read_thresholds(thresholds: Dict) -> dict[str, float | None]:
    """Return the property thresholds of ``thresholds`` (flat, or the output of :func:`calibrate_committee`)."""
    values = thresholds.get_dict()
    values = values.get('thresholds', values)
    unknown = sorted(set(values) - set(PROPERTIES))
    if unknown:
        raise ValueError(f'`thresholds`: unknown properties {unknown}: use {sorted(PROPERTIES)}')
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            raise ValueError(f'`thresholds`: `{name}` must be a non-negative number or None, got {value!r}')
    if all(value is None for value in values.values()):
        raise ValueError('`thresholds`: no property has a threshold, nothing can be selected')
    return values


def _candidates(dataset: PESData, thresholds: dict[str, float | None]) -> np.ndarray:
    """Return the indices of the unlabelled frames whose disagreement exceeds the threshold of any property.

    Frames without stress (molecules, or a dataset without any) have no stress disagreement and never exceed it.
    """
    used = [name for name, value in thresholds.items() if value is not None]
    masks = []
    for batch in dataset.iter_batches():
        _require_columns(batch, [PROPERTIES[name] for name in used], [])
        disagreements = {name: batch.frame_arrays.get(PROPERTIES[name], np.full(len(batch), np.nan)) for name in used}
        masks.append(above_threshold(disagreements, thresholds) & ~batch.labelled)
    return np.flatnonzero(np.concatenate(masks or [np.zeros(0, bool)]))


def _descriptors(dataset: PESData, indices: np.ndarray) -> np.ndarray:
    """Return the structure descriptors of the frames of ``dataset`` at the sorted ``indices``."""
    species = sorted(atomic_numbers[symbol] for symbol in dataset.species)
    rows, start = [], 0
    for batch in dataset.iter_batches():
        local = indices[(indices >= start) & (indices < start + len(batch))] - start
        rows.extend(structure_descriptor(atoms, species) for atoms in iter_atoms_from_batch(batch.take(local)))
        start += len(batch)
    return np.array(rows)


@calcfunction
def select_frames(dataset: PESData, thresholds: Dict, max_frames: Int, seed: Int, method: Str | None = None) -> PESData:
    """Return the unlabelled frames of ``dataset`` whose disagreement exceeds the threshold of any property, capped.

    ``thresholds`` maps energy/forces/stress to a disagreement threshold (or ``None`` to ignore the property); the
    output of :func:`calibrate_committee` is accepted as is. Above ``max_frames`` candidates, ``method`` ``random``
    (default, seed 001) keeps a uniform random subset and ``diverse`` a farthest-point sample on a structural
    descriptor (:func:`~aiida_trainspot.uncertainty.selection.structure_descriptor`), both drawn with ``seed``. The
    frames keep their order and columns.
    """
    chosen_method = method.value if method is not None else 'random'
    if chosen_method not in SELECTION_METHODS:
        raise ValueError(f'`method`: unknown selection method {chosen_method!r}: use one of {SELECTION_METHODS}')
    if max_frames.value < 1:
        raise ValueError(f'`max_frames` must be at least 1, got {max_frames.value}')
    candidates = _candidates(dataset, _read_thresholds(thresholds))
    descriptors = None
    if chosen_method == 'diverse' and len(candidates) > max_frames.value:
        descriptors = _descriptors(dataset, candidates)
    rng = np.random.default_rng(seed.value)
    keep = cap_selection(candidates, max_frames.value, rng, chosen_method, descriptors)

    def batches() -> Iterator[FrameBatch]:
        start = 0
        for batch in dataset.iter_batches():
            yield batch.take(keep[(keep >= start) & (keep < start + len(batch))] - start)
            start += len(batch)

    return PESData.from_batches(batches())


@calcfunction
def committee_accuracy(dataset: PESData) -> Dict:
    """Return the RMSE of the committee mean against the labels of ``dataset``, per split and over all frames.

    ``dataset`` carries the committee columns (an evaluated dataset); its labelled frames count. Per split
    (``train``, ``valid``, ``test``, and ``all``): ``energy_rmse`` (meV/atom), ``forces_rmse`` (meV/Å),
    ``stress_rmse`` (meV/Å³, ``None`` without stress labels) and ``num_frames``.
    """
    per_split: dict[str, SquaredErrors] = {name: SquaredErrors() for name in (*SPLITS, 'all')}
    for batch in dataset.iter_batches():
        _require_columns(batch, ['committee_energy'], ['committee_forces'])
        block = batch.take(np.flatnonzero(batch.labelled))
        energies = block.frame_arrays['committee_energy'].mean(axis=1)
        forces = block.atom_arrays['committee_forces'].mean(axis=1)
        stresses = block.frame_arrays.get('committee_stress')
        offsets = block.offsets
        for index in range(len(block)):
            atoms = slice(offsets[index], offsets[index + 1])
            stress = None
            if stresses is not None and np.isfinite(block.stress[index]).all():
                stress = (stresses[index].mean(axis=0), block.stress[index])
            frame = (
                int(block.natoms[index]),
                (float(energies[index]), float(block.energy[index])),
                (forces[atoms], block.forces[atoms]),
                stress,
            )
            for name in (FRAME_SPLITS[block.split[index]], 'all'):
                if name:
                    accumulate_frame(per_split[name], *frame)
    return Dict(split_rmse(per_split, (*SPLITS, 'all')))
