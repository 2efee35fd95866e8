"""Calculation functions of labelling: the structure a DFT code gets for a frame, and the labels it gives back."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from aiida.engine import calcfunction
from aiida.orm import Dict, Float, Int, StructureData, TrajectoryData

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


@calcfunction
def labels_from_pw(dataset: PESData, failures: Dict, **results: StructureData | Dict | TrajectoryData) -> dict:
    """Return the frames of ``dataset`` labelled by pw.x, and those whose DFT failed, as two datasets.

    Frame ``i`` is labelled from the results ``structure_i``, ``parameters_i`` and ``trajectory_i``. ``failures``
    maps frame indices (as strings) to why their DFT failed: those frames go, unlabelled and with their reason, to
    the ``failed`` output (only made when some failed), so that they stay out of training but in the record.
    """
    reasons = failures.get_dict()

    def labelled() -> Iterator[Frame]:
        for index, frame in enumerate(dataset.iter_frames()):
            if f'parameters_{index}' in results:
                yield _pw_labelled_frame(
                    frame, results[f'structure_{index}'], results[f'parameters_{index}'], results[f'trajectory_{index}']
                )

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
