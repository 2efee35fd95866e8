"""``EvaluationParser``: the evaluated dataset written by ``trainspot-evaluate``, or why there is none."""

from __future__ import annotations

from aiida import orm
from aiida.engine import ExitCode

from .runner import RunnerParser


class EvaluationParser(RunnerParser):
    """Parse the files of :class:`~aiida_trainspot.calculations.evaluate.EvaluationCalculation`.

    The evaluated dataset comes from the temporary retrieved folder (it is stored once, in the output node) and
    ``output_parameters`` from ``results.json``, which instead names the member and the reason when a model could not
    be loaded or could not predict.
    """

    def parse(self, **kwargs) -> ExitCode:
        """Parse ``results.json`` from the retrieved folder and ``evaluated.h5`` from the temporary retrieved one."""
        calculation = self.node.process_class
        dataset_name, results_name = calculation._OUTPUT_DATASET, calculation._RESULTS_FILENAME
        results = self.read_json(results_name)
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
        dataset = self.read_dataset(
            kwargs.get('retrieved_temporary_folder'), dataset_name, len(self.node.inputs.dataset)
        )
        if isinstance(dataset, ExitCode):
            return dataset
        self.out('evaluated_dataset', dataset)
        self.out('output_parameters', orm.Dict(results))
        return ExitCode(0)
