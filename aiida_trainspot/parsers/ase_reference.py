"""``AseReferenceParser``: the labelled dataset written by ``trainspot-ase-label``, or why there is none."""

from __future__ import annotations

import json
from pathlib import Path

from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser

from ..data import PESData
from ..dataset import CorruptDatasetError


class AseReferenceParser(Parser):
    """Parse the files of :class:`~aiida_trainspot.calculations.ase_reference.AseReferenceCalculation`.

    The labelled dataset comes from the temporary retrieved folder (it is stored once, in the output node) and
    ``output_parameters`` from ``results.json``. Both are attached also when every frame failed, so that the reasons
    are kept.
    """

    def parse(self, **kwargs) -> ExitCode:
        """Parse ``labelled.h5`` from the temporary retrieved folder and ``results.json`` from the retrieved one."""
        calculation = self.node.process_class
        dataset_name, results_name = calculation._OUTPUT_DATASET, calculation._RESULTS_FILENAME
        temporary = kwargs.get('retrieved_temporary_folder')
        filepath = Path(temporary) / dataset_name if temporary else None
        if filepath is None or not filepath.is_file():
            return self.exit_codes.ERROR_OUTPUT_MISSING.format(filename=dataset_name, reason=self._runner_error())
        try:
            dataset = PESData(filepath)
        except CorruptDatasetError as exception:
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(filename=dataset_name, reason=str(exception))
        expected = len(self.node.inputs.dataset)
        if len(dataset) != expected:
            reason = f'it holds {len(dataset)} frames, the input dataset {expected}'
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(filename=dataset_name, reason=reason)
        try:
            results = json.loads(self.retrieved.get_object_content(results_name))
        except FileNotFoundError:
            return self.exit_codes.ERROR_OUTPUT_MISSING.format(filename=results_name, reason=self._runner_error())
        except (OSError, ValueError) as exception:
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(filename=results_name, reason=str(exception))
        if not isinstance(results, dict):
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(filename=results_name, reason='not a JSON object')

        self.out('labelled_dataset', dataset)
        self.out('output_parameters', orm.Dict(results))
        if dataset.base.attributes.get('num_labelled') == 0:
            failures = results.get('failures') or [{'reason': 'no reason recorded'}]
            return self.exit_codes.ERROR_ALL_FRAMES_FAILED.format(reason=failures[0].get('reason'))
        return ExitCode(0)

    def _runner_error(self) -> str:
        """Return the last line the runner printed to standard error, or say that it printed none."""
        try:
            lines = self.retrieved.get_object_content(self.node.process_class._ERROR_FILENAME).strip().splitlines()
        except (FileNotFoundError, OSError, UnicodeDecodeError):
            lines = []
        return lines[-1] if lines else 'the runner printed no error'
