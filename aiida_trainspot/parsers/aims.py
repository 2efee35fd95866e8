"""``AimsParser``: the energy, forces and stress of an FHI-aims run, or the exit code that says why there are none."""

from __future__ import annotations

from typing import Any

from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser

from ..dft.aims import AimsFailure, AimsOutput, parse_aims_output


def output_parameters(output: AimsOutput) -> dict[str, Any]:
    """Return the ``output_parameters`` of ``output``: the scalars it has, with their units."""
    parameters = {
        'energy': output.energy,
        'energy_units': 'eV',
        'finished': output.finished,
        'scf_converged': output.scf_converged,
        'scf_iterations': output.scf_iterations,
        'fhi_aims_version': output.version,
        'wall_time_seconds': output.wall_time,
        'number_of_atoms': len(output.atoms) if output.atoms is not None else None,
        'failure_reason': output.failure_reason or None,
    }
    return {key: value for key, value in parameters.items() if value is not None}


class AimsParser(Parser):
    """Parse the standard output of :class:`~aiida_trainspot.calculations.aims.AimsCalculation`.

    ``output_parameters`` is attached whenever the output can be read, also for a failed run (to say how it failed);
    ``output_arrays`` (forces, stress) and ``output_structure`` only for a run that finished with a converged SCF.
    """

    def parse(self, **kwargs) -> ExitCode:
        """Parse ``aims.out`` from the retrieved folder."""
        filename = self.node.get_option('output_filename')
        try:
            text = self.retrieved.get_object_content(filename)
        except FileNotFoundError:
            return self.exit_codes.ERROR_OUTPUT_STDOUT_MISSING
        except (OSError, UnicodeDecodeError) as exception:
            return self.exit_codes.ERROR_OUTPUT_STDOUT_READ.format(reason=str(exception))

        output = parse_aims_output(text)
        if output.failure is AimsFailure.UNREADABLE:
            self.logger.error(output.failure_reason)
            return self.exit_codes.ERROR_OUTPUT_STDOUT_READ.format(reason=output.failure_reason)
        self.out('output_parameters', orm.Dict(output_parameters(output)))
        if output.failure is AimsFailure.SCF_NOT_CONVERGED:
            self.logger.error(output.failure_reason)
            return self.exit_codes.ERROR_ELECTRONIC_CONVERGENCE_NOT_REACHED.format(reason=output.failure_reason)
        if output.failure is AimsFailure.INCOMPLETE:
            self.logger.error(output.failure_reason)
            return self.exit_codes.ERROR_OUTPUT_STDOUT_INCOMPLETE.format(reason=output.failure_reason)

        arrays = {
            name: value for name, value in (('forces', output.forces), ('stress', output.stress)) if value is not None
        }
        if arrays:
            output_arrays = orm.ArrayData()
            for name, value in arrays.items():
                output_arrays.set_array(name, value)
            self.out('output_arrays', output_arrays)
        if output.moves_atoms and output.atoms is not None:
            self.out('output_structure', orm.StructureData(ase=output.atoms))
        return ExitCode(0)
