"""``MdParser``: the frames, trace and stop reason written by ``trainspot-md``, or why there are none."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import ExitCode

from .runner import RunnerParser

TRACE_COLUMNS = ('run', 'step', 'time_fs', 'temperature', 'uncertainty', 'threshold')


def trace_node(trace: list[dict]) -> orm.ArrayData:
    """Return the ``trace`` entries as an ``ArrayData``, one array per column (NaN: no uncertainty, no threshold)."""
    node = orm.ArrayData()
    for column in TRACE_COLUMNS:
        values = [np.nan if entry.get(column) is None else entry[column] for entry in trace]
        node.set_array(column, np.array(values, dtype=np.int64 if column in ('run', 'step') else np.float64))
    return node


class MdParser(RunnerParser):
    """Parse the files of :class:`~aiida_trainspot.calculations.md.MdCalculation`.

    The frames come from the temporary retrieved folder (stored once, in the output node), ``output_parameters`` from
    ``results.json`` and ``trace`` from ``trace.json``. All are attached also when the stability guard stopped the
    run (exit code 410); the uncertainty stop is the wanted outcome of an on-the-fly exploration (exit code 0).
    """

    def parse(self, **kwargs) -> ExitCode:
        """Parse ``frames.h5`` from the temporary retrieved folder, ``results.json`` and ``trace.json``."""
        calculation = self.node.process_class
        frames = self.read_dataset(kwargs.get('retrieved_temporary_folder'), calculation._OUTPUT_DATASET)
        if isinstance(frames, ExitCode):
            return frames
        results = self.read_json(calculation._RESULTS_FILENAME)
        if isinstance(results, ExitCode):
            return results
        trace = self.read_json(calculation._TRACE_FILENAME, list)
        if isinstance(trace, ExitCode):
            return trace

        self.out('frames', frames)
        self.out('trace', trace_node(trace))
        self.out('output_parameters', orm.Dict(results))
        if str(results.get('stop_reason', '')).startswith('unstable'):
            return self.exit_codes.ERROR_UNSTABLE.format(reason=results['stop_reason'])
        return ExitCode(0)
