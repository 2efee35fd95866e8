"""``MdParser``: the frames, trace and stop reason written by ``trainspot-md``, or why there are none."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser

from ..data import PESData
from ..dataset import CorruptDatasetError

TRACE_COLUMNS = ('run', 'step', 'time_fs', 'temperature', 'uncertainty')


def trace_node(trace: list[dict]) -> orm.ArrayData:
    """Return the ``trace`` entries as an ``ArrayData`` with one array per column (NaN for a missing uncertainty)."""
    node = orm.ArrayData()
    for column in TRACE_COLUMNS:
        values = [np.nan if entry.get(column) is None else entry[column] for entry in trace]
        node.set_array(column, np.array(values, dtype=np.int64 if column in ('run', 'step') else np.float64))
    return node


class MdParser(Parser):
    """Parse the files of :class:`~aiida_trainspot.calculations.md.MdCalculation`.

    The frames come from the temporary retrieved folder (stored once, in the output node), ``output_parameters`` from
    ``results.json`` and ``trace`` from ``trace.json``. All are attached also when the stability guard stopped the
    run (exit code 410); the uncertainty stop is the wanted outcome of an on-the-fly exploration (exit code 0).
    """

    def parse(self, **kwargs) -> ExitCode:
        """Parse ``frames.h5`` from the temporary retrieved folder, ``results.json`` and ``trace.json``."""
        calculation = self.node.process_class
        dataset_name = calculation._OUTPUT_DATASET
        temporary = kwargs.get('retrieved_temporary_folder')
        filepath = Path(temporary) / dataset_name if temporary else None
        if filepath is None or not filepath.is_file():
            return self.exit_codes.ERROR_OUTPUT_MISSING.format(filename=dataset_name, reason=self._runner_error())
        try:
            frames = PESData(filepath)
        except CorruptDatasetError as exception:
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(filename=dataset_name, reason=str(exception))
        parsed = {}
        for name, kind in ((calculation._RESULTS_FILENAME, dict), (calculation._TRACE_FILENAME, list)):
            try:
                parsed[name] = json.loads(self.retrieved.get_object_content(name))
            except FileNotFoundError:
                return self.exit_codes.ERROR_OUTPUT_MISSING.format(filename=name, reason=self._runner_error())
            except (OSError, ValueError) as exception:
                return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(filename=name, reason=str(exception))
            if not isinstance(parsed[name], kind):
                return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(filename=name, reason=f'not a JSON {kind}')
        results = parsed[calculation._RESULTS_FILENAME]

        self.out('frames', frames)
        self.out('trace', trace_node(parsed[calculation._TRACE_FILENAME]))
        self.out('output_parameters', orm.Dict(results))
        if str(results.get('stop_reason', '')).startswith('unstable'):
            return self.exit_codes.ERROR_UNSTABLE.format(reason=results['stop_reason'])
        return ExitCode(0)

    def _runner_error(self) -> str:
        """Return the last line the runner printed to standard error, or say that it printed none."""
        try:
            lines = self.retrieved.get_object_content(self.node.process_class._ERROR_FILENAME).strip().splitlines()
        except (FileNotFoundError, OSError, UnicodeDecodeError):
            lines = []
        return lines[-1] if lines else 'the runner printed no error'
