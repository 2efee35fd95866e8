"""Calcfunctions of exploration: the outcome of every MD run of a grid, recorded with provenance."""

from __future__ import annotations

from aiida.engine import calcfunction
from aiida.orm import Dict, List

from ...data import PESData


@calcfunction
def summarize_runs(grid: List, **results: Dict | PESData) -> List:
    """Return one entry per run of ``grid``: its conditions, stop reason and frame count.

    :param grid: the runs (structure, ensemble, temperature, pressure, seed), in order.
    :param results: the ``output_parameters`` of run ``k`` as ``run_<k>`` (``trainspot-md``), or its frames (LAMMPS,
        which completed); a run without either failed with no output.
    """
    summary = []
    for index, run in enumerate(grid.get_list()):
        result = results.get(f'run_{index}')
        if isinstance(result, PESData):
            outcome = {'stop_reason': 'completed', 'num_frames': len(result)}
        else:
            outcome = result.get_dict() if result is not None else {}
        stop_reason = outcome.get('stop_reason', 'failed: no output')
        summary.append({**run, 'stop_reason': stop_reason, 'frames': int(outcome.get('num_frames', 0))})
    return List(summary)
