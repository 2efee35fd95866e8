"""``AseReferenceParser``: the labelled dataset written by ``trainspot-ase-label``, or why there is none."""

from __future__ import annotations

from aiida import orm
from aiida.engine import ExitCode

from .runner import RunnerParser


class AseReferenceParser(RunnerParser):
    """Parse the files of :class:`~aiida_trainspot.calculations.ase_reference.AseReferenceCalculation`.

    The labelled dataset comes from the temporary retrieved folder (it is stored once, in the output node) and
    ``output_parameters`` from ``results.json``. Both are attached also when every frame failed, so that the reasons
    are kept.
    """

    def parse(self, **kwargs) -> ExitCode:
        """Parse ``labelled.h5`` from the temporary retrieved folder and ``results.json`` from the retrieved one."""
        calculation = self.node.process_class
        dataset = self.read_dataset(
            kwargs.get('retrieved_temporary_folder'), calculation._OUTPUT_DATASET, len(self.node.inputs.dataset)
        )
        if isinstance(dataset, ExitCode):
            return dataset
        results = self.read_json(calculation._RESULTS_FILENAME)
        if isinstance(results, ExitCode):
            return results

        self.out('labelled_dataset', dataset)
        self.out('output_parameters', orm.Dict(results))
        if dataset.base.attributes.get('num_labelled') == 0:
            failures = results.get('failures') or [{'reason': 'no reason recorded'}]
            return self.exit_codes.ERROR_ALL_FRAMES_FAILED.format(reason=failures[0].get('reason'))
        return ExitCode(0)
