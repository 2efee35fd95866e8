"""Calculation functions of labelling: the structure a DFT code gets for a frame, and the labels it gives back."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from aiida.engine import calcfunction
from aiida.orm import ArrayData, Bool, Dict, Float, Int, List, StructureData, TrajectoryData
from aiida_quantumespresso.calculations.functions.create_kpoints_from_distance import create_kpoints_from_distance

from ...augmentation.geometry import pad_vacuum
from ...data import PESData
from ...dataset import Frame, frame_to_atoms
from ...dft.espresso import stress_from_gpa


@calcfunction
def frame_structure(dataset: PESData, index: Int, vacuum: Float) -> StructureData:
    """Return frame ``index`` of ``dataset`` as a structure with at least ``vacuum`` Å along non-periodic directions.

    Positions along periodic directions are kept; a non-periodic direction with less vacuum gets a longer cell vector
    and the atoms centred along it (see :func:`aiida_trainspot.augmentation.geometry.pad_vacuum`).
    """
    atoms = frame_to_atoms(dataset.get_frame(index.value))
    return StructureData(ase=pad_vacuum(atoms, vacuum.value))


@calcfunction
def frame_structures(
    dataset: PESData,
    indices: List,
    vacuum: Float,
    kpoints_distance: Float | None = None,
    kpoints_force_parity: Bool | None = None,
) -> dict:
    """Return the structures of the frames ``indices`` of ``dataset``, as :func:`frame_structure` makes each one.

    The output ``structure_<i>`` is frame ``i``. With ``kpoints_distance`` (Å⁻¹), also its k-point mesh
    ``kpoints_<i>``, made exactly as aiida-quantumespresso's ``create_kpoints_from_distance`` makes it (its own
    function is called): one calcfunction for many frames instead of two per frame.
    """
    outputs = {}
    with dataset.open() as reader:
        for index in indices.get_list():
            atoms = frame_to_atoms(reader.read(index, index + 1).frame(0))
            structure = StructureData(ase=pad_vacuum(atoms, vacuum.value))
            outputs[f'structure_{index}'] = structure
            if kpoints_distance is not None:
                parity = kpoints_force_parity if kpoints_force_parity is not None else Bool(False)
                outputs[f'kpoints_{index}'] = create_kpoints_from_distance.__wrapped__(
                    structure, kpoints_distance, parity
                )
    return outputs


def _pw_labelled_frame(frame: Frame, structure: StructureData, parameters: Dict, trajectory: TrajectoryData) -> Frame:
    """Return ``frame`` in the geometry pw.x computed (``structure``) with the energy, forces and stress it gave.

    Stress is kept only for fully periodic cells: along a vacuum direction it measures nothing physical.
    """
    frame.positions = np.array([site.position for site in structure.sites])
    frame.cell = np.array(structure.cell)
    frame.energy = parameters['energy']
    frame.forces = trajectory.get_array('forces')[-1]
    has_stress = 'stress' in trajectory.get_arraynames() and all(structure.pbc)
    frame.stress = stress_from_gpa(trajectory.get_array('stress')[-1]) if has_stress else None
    frame.failure_reason = ''
    return frame


def _labelled_and_failed(dataset: PESData, reasons: dict, label: Callable[[int, Frame], Frame | None]) -> dict:
    """Return the ``labelled`` frames of ``dataset`` and, if some DFT failed, the ``failed`` ones, unlabelled.

    ``label(index, frame)`` gives the labelled frame, or ``None`` for a frame without results; ``reasons`` maps frame
    indices (as strings) to why their DFT failed.
    """

    def labelled() -> Iterator[Frame]:
        for index, frame in enumerate(dataset.iter_frames()):
            result = label(index, frame)
            if result is not None:
                yield result

    def failed() -> Iterator[Frame]:
        for index, frame in enumerate(dataset.iter_frames()):
            if str(index) in reasons:
                frame.energy = frame.forces = frame.stress = None
                frame.failure_reason = reasons[str(index)]
                yield frame

    outputs = {'labelled': PESData.from_frames(labelled())}
    if reasons:
        outputs['failed'] = PESData.from_frames(failed())
    return outputs


@calcfunction
def labels_from_pw(dataset: PESData, failures: Dict, **results: StructureData | Dict | TrajectoryData) -> dict:
    """Return the frames of ``dataset`` labelled by pw.x, and those whose DFT failed, as two datasets.

    Frame ``i`` is labelled from the results ``structure_i``, ``parameters_i`` and ``trajectory_i``. ``failures``
    maps frame indices (as strings) to why their DFT failed: those frames go, unlabelled and with their reason, to
    the ``failed`` output (only made when some failed), so that they stay out of training but in the record.
    """

    def label(index: int, frame: Frame) -> Frame | None:
        if f'parameters_{index}' not in results:
            return None
        return _pw_labelled_frame(
            frame, results[f'structure_{index}'], results[f'parameters_{index}'], results[f'trajectory_{index}']
        )

    return _labelled_and_failed(dataset, failures.get_dict(), label)


def _aims_labelled_frame(frame: Frame, structure: StructureData, parameters: Dict, arrays: ArrayData) -> Frame:
    """Return ``frame`` in the geometry FHI-aims computed (``structure``) with the energy, forces and stress it gave.

    FHI-aims' stress is already in eV/Å³ with ASE's sign; it is kept only for fully periodic cells.
    """
    frame.positions = np.array([site.position for site in structure.sites])
    frame.cell = np.array(structure.cell)
    frame.energy = parameters['energy']
    frame.forces = arrays.get_array('forces')
    has_stress = 'stress' in arrays.get_arraynames() and all(structure.pbc)
    frame.stress = arrays.get_array('stress') if has_stress else None
    frame.failure_reason = ''
    return frame


@calcfunction
def labels_from_aims(dataset: PESData, failures: Dict, **results: StructureData | Dict | ArrayData) -> dict:
    """Return the frames of ``dataset`` labelled by FHI-aims, and those whose DFT failed, as two datasets.

    Frame ``i`` is labelled from the results ``structure_i`` (what FHI-aims got), ``parameters_i`` (energy) and
    ``arrays_i`` (forces, stress) of its ``AimsCalculation``; ``failures`` as for :func:`labels_from_pw`.
    """

    def label(index: int, frame: Frame) -> Frame | None:
        if f'parameters_{index}' not in results:
            return None
        return _aims_labelled_frame(
            frame, results[f'structure_{index}'], results[f'parameters_{index}'], results[f'arrays_{index}']
        )

    return _labelled_and_failed(dataset, failures.get_dict(), label)


@calcfunction
def labels_from_reference(dataset: PESData, failures: Dict, **chunks: PESData) -> dict:
    """Return the frames of ``dataset`` labelled by a reference calculator, and those that failed, as two datasets.

    ``chunk_<start>`` holds frames ``start``, ``start + 1``... of ``dataset`` as the calculator returned them: labelled,
    or with the reason their calculation failed. ``failures`` maps the indices of frames whose whole job failed (as
    strings) to its reason. The ``failed`` output is only made when some frame failed.
    """
    reasons = failures.get_dict()
    returned = {
        int(label.removeprefix('chunk_')) + offset: frame
        for label, chunk in chunks.items()
        for offset, frame in enumerate(chunk.iter_frames())
    }

    def selected(labelled: bool) -> Iterator[Frame]:
        for index, frame in enumerate(dataset.iter_frames()):
            if index in returned and returned[index].labelled == labelled:
                yield returned[index]
            elif not labelled and str(index) in reasons:
                frame.energy = frame.forces = frame.stress = None
                frame.failure_reason = reasons[str(index)]
                yield frame

    outputs = {'labelled': PESData.from_frames(selected(True))}
    if reasons or any(not frame.labelled for frame in returned.values()):
        outputs['failed'] = PESData.from_frames(selected(False))
    return outputs
