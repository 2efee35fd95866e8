"""Calculation functions that turn DFT results into dataset labels."""

from __future__ import annotations

from aiida.engine import calcfunction
from aiida.orm import Dict, TrajectoryData

from ...data import PESData
from ...dataset import Frame
from ...dft.espresso import stress_from_gpa


def _pw_labelled_frame(frame: Frame, parameters: Dict, trajectory: TrajectoryData) -> Frame:
    """Return ``frame`` with the energy, forces and stress of a finished pw.x run."""
    frame.energy = parameters['energy']
    frame.forces = trajectory.get_array('forces')[-1]
    frame.stress = (
        stress_from_gpa(trajectory.get_array('stress')[-1]) if 'stress' in trajectory.get_arraynames() else None
    )
    frame.failure_reason = ''
    return frame


@calcfunction
def labels_from_pw(dataset: PESData, failures: Dict, **results: Dict | TrajectoryData) -> PESData:
    """Return ``dataset`` labelled by pw.x: frame ``i`` takes the results ``parameters_i`` and ``trajectory_i``.

    ``failures`` maps frame indices (as strings) to the reason their DFT failed: those frames keep no labels and
    record the reason, so that they stay out of training but in the record. A frame in neither is left as it is.
    """
    reasons = failures.get_dict()

    def frames():
        for index, frame in enumerate(dataset.iter_frames()):
            if f'parameters_{index}' in results:
                yield _pw_labelled_frame(frame, results[f'parameters_{index}'], results[f'trajectory_{index}'])
                continue
            if str(index) in reasons:
                frame.energy = frame.forces = frame.stress = None
                frame.failure_reason = reasons[str(index)]
            yield frame

    return PESData.from_frames(frames())
