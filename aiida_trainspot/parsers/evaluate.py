"""``EvaluationParser``: the evaluated dataset written by ``trainspot-evaluate``, or why there is none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser

from ..data import PESData
from ..dataset import CorruptDatasetError


class EvaluationParser(Parser):
    """Parse the files of :class:`~aiida_trainspot.calculations.evaluate.EvaluationCalculation`.

    The evaluated dataset comes from the temporary retrieved folder (it is stored once, in the output node) and
    ``output_parameters`` from ``results.json``, which instead names the member and the reason when a model could not
    be loaded or could not predict.
    """

    def parse(self, **kwargs) -> ExitCode:
        """Parse ``results.json`` from the retrieved folder and ``evaluated.h5`` from the temporary retrieved one."""
        calculation = self.node.process_class
        dataset_name, results_name = calculation._OUTPUT_DATASET, calculation._RESULTS_FILENAME
        results = self._read_results(results_name)
        if isinstance(results, ExitCode):
            return results
        if 'error' in results:
            exit_code = {'model': 'ERROR_MODEL_LOAD_FAILED', 'prediction': 'ERROR_PREDICTION_FAILED'}.get(
                results['error']
            )
            if exit_code is None:
                return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(filename=results_name, reason=str(results))
            member = f'member_{results.get("member")}'
            return self.exit_codes[exit_code].format(member=member, reason=results.get('reason', 'no reason recorded'))

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
        self.out('evaluated_dataset', dataset)
        self.out('output_parameters', orm.Dict(results))
        return ExitCode(0)

    def _read_results(self, results_name: str) -> dict[str, Any] | ExitCode:
        """Return the JSON object of ``results.json``, or the exit code that says why there is none."""
        try:
            results = json.loads(self.retrieved.get_object_content(results_name))
        except FileNotFoundError:
            return self.exit_codes.ERROR_OUTPUT_MISSING.format(filename=results_name, reason=self._runner_error())
        except (OSError, ValueError) as exception:
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(filename=results_name, reason=str(exception))
        if not isinstance(results, dict):
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(filename=results_name, reason='not a JSON object')
        return results

    def _runner_error(self) -> str:
        """Return the last line the runner printed to standard error, or say that it printed none."""
        try:
            lines = self.retrieved.get_object_content(self.node.process_class._ERROR_FILENAME).strip().splitlines()
        except (FileNotFoundError, OSError, UnicodeDecodeError):
            lines = []
        return lines[-1] if lines else 'the runner printed no error'
