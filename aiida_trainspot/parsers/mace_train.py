"""``MaceTrainParser``: the model, per-epoch metrics and final errors of a MACE training, or why there are none.

Exit codes, in order of precedence (the first that applies wins; partial outputs are attached first):

1. 300 the output was not retrieved (unless the scheduler says out of memory or out of walltime: 420, 400);
2. 310 the output cannot be read;
3. 420 out of memory: the scheduler says so, or torch, Python or SLURM printed an out-of-memory message;
4. 410 the loss is NaN or infinite, or the validation loss diverged: a restart with the same settings would fail
   the same way, even if the job also ran out of time;
5. 400 out of walltime: the scheduler says so, or the log stops during training after at least one validation (so
   a checkpoint was saved) without a Python error; ``remote_folder`` holds the checkpoints to resume from;
6. 312 MACE stopped before the end for another reason (the last Python exception is in the message);
7. 302 / 310 the per-epoch results file is missing or unreadable;
8. 430 MACE finished but no model file came back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser
from ase.data import chemical_symbols

from ..data import PotentialData
from ..training import finite_or_none
from ..training.mace import MODEL_NAME, validate_hyperparameters
from ..training.mace_outputs import (
    MaceLog,
    epoch_metrics,
    final_errors,
    last_exception,
    loss_problem,
    out_of_memory,
    parse_log,
    parse_results,
)

SCHEDULER_OUT_OF_MEMORY = 110
SCHEDULER_OUT_OF_WALLTIME = 120
"""Exit statuses that aiida-core's scheduler parsers set on the node before the parser runs."""


class MaceTrainParser(Parser):
    """Parse the files of :class:`~aiida_trainspot.calculations.mace_train.MaceTrainCalculation`."""

    def parse(self, **kwargs) -> ExitCode:
        """Parse ``mace.out``, ``mace.err``, the results file and the model from the temporary retrieved folder."""
        calculation = self.node.process_class
        try:
            stdout = self.retrieved.get_object_content(calculation._OUTPUT_FILENAME)
        except FileNotFoundError:
            return self._exit_without_output()
        except (OSError, UnicodeDecodeError) as exception:
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(
                filename=calculation._OUTPUT_FILENAME, reason=str(exception)
            )
        stderr = self._text(calculation._ERROR_FILENAME) + self._text(self.node.get_option('scheduler_stderr'))
        log = parse_log(stdout)
        records, results_exit = self._read_results()
        metrics = epoch_metrics(records) if records else None
        if metrics is not None and len(metrics['epoch']):
            self.out('metrics', self._metrics_node(metrics))
        if log.errors:
            self.out('errors', orm.Dict(finite_or_none(final_errors(log, metrics))))
        model_exit = self._attach_model(log, kwargs.get('retrieved_temporary_folder'))

        failure = self._failure(log, records, stdout, stderr)
        if failure is not None:
            self.logger.error(failure.message)
            return failure
        return results_exit or model_exit or ExitCode(0)

    def _exit_without_output(self) -> ExitCode:
        """Return the exit code of a job whose output was not retrieved: the scheduler's reason if it gave one."""
        if self.node.exit_status == SCHEDULER_OUT_OF_MEMORY:
            return self.exit_codes.ERROR_OUT_OF_MEMORY.format(reason='the scheduler says so')
        if self.node.exit_status == SCHEDULER_OUT_OF_WALLTIME:
            return self.exit_codes.ERROR_OUT_OF_WALLTIME.format(epochs='an unknown number of')
        return self.exit_codes.ERROR_OUTPUT_STDOUT_MISSING

    def _failure(self, log: MaceLog, records: list[dict[str, Any]], stdout: str, stderr: str) -> ExitCode | None:
        """Return the exit code of a failed run, by the precedence of the module docstring, or ``None``."""
        memory = out_of_memory(stderr, stdout)
        if memory or self.node.exit_status == SCHEDULER_OUT_OF_MEMORY:
            return self.exit_codes.ERROR_OUT_OF_MEMORY.format(reason=memory or 'the scheduler says so')
        problem = loss_problem(records, log)
        if problem:
            return self.exit_codes.ERROR_LOSS_NOT_FINITE.format(reason=problem)
        exception = last_exception(stderr)
        stopped_in_training = log.started and not log.completed and log.evaluated_epochs and exception is None
        if self.node.exit_status == SCHEDULER_OUT_OF_WALLTIME or stopped_in_training:
            return self.exit_codes.ERROR_OUT_OF_WALLTIME.format(epochs=len(log.evaluated_epochs))
        if not (log.completed and log.finished):
            reason = exception or ('the log stops during training' if log.started else 'it never started training')
            return self.exit_codes.ERROR_OUTPUT_STDOUT_INCOMPLETE.format(reason=reason)
        return None

    def _text(self, filename: str | None) -> str:
        """Return the content of the retrieved file ``filename``, or an empty string if it is missing."""
        if not filename:
            return ''
        try:
            return self.retrieved.get_object_content(filename)
        except (FileNotFoundError, OSError, UnicodeDecodeError):
            return ''

    def _read_results(self) -> tuple[list[dict[str, Any]], ExitCode | None]:
        """Return the records of the results file of this run's seed, and the exit code if it is missing or bad."""
        folder = self.node.process_class._RESULTS_FOLDER
        filename = f'{folder}/{MODEL_NAME}_run-{self.node.inputs.seed.value}_train.txt'
        try:
            return parse_results(self.retrieved.get_object_content(filename)), None
        except FileNotFoundError:
            return [], self.exit_codes.ERROR_OUTPUT_METRICS_MISSING
        except (OSError, UnicodeDecodeError, ValueError) as exception:
            return [], self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(filename=filename, reason=str(exception))

    @staticmethod
    def _metrics_node(metrics: dict[str, Any]) -> orm.ArrayData:
        """Return the per-epoch metrics as an ``ArrayData``, with the units of its columns as an attribute."""
        node = orm.ArrayData()
        for name, values in metrics.items():
            node.set_array(name, values)
        units = {
            name: 'meV/atom' if 'energy' in name else 'meV/Å' if 'forces' in name else 'meV/Å³' for name in metrics
        }
        units.update(epoch='epochs completed', train_loss='MACE loss', valid_loss='MACE loss')
        node.base.attributes.set('units', units)
        return node

    def _attach_model(self, log: MaceLog, temporary: str | None) -> ExitCode | None:
        """Attach the model MACE saved (stage two if any) with its metadata; return an exit code if there is none."""
        calculation = self.node.process_class
        folder = Path(temporary) if temporary else None
        path = next(
            (folder / name for name in calculation._MODEL_FILENAMES if folder and (folder / name).is_file()), None
        )
        if path is None:
            return self.exit_codes.ERROR_MODEL_MISSING
        inputs = self.node.inputs
        start = next((inputs[name] for name in ('restart_from', 'foundation_model') if name in inputs), None)
        values = inputs.hyperparameters.get_dict() if 'hyperparameters' in inputs else {}
        try:
            model = PotentialData(
                path,
                architecture='mace',
                species=[chemical_symbols[number] for number in log.atomic_numbers],
                cutoff=log.cutoff,
                seed=inputs.seed.value,
                dtype=validate_hyperparameters(values).default_dtype,
                training_set_uuid=inputs.dataset.uuid,
                parent_model_uuid=start.uuid if start else None,
            )
        except ValueError as exception:
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(filename=path.name, reason=str(exception))
        energies = {chemical_symbols[number]: energy for number, energy in log.atomic_energies.items()}
        model.base.attributes.set('atomic_energies', energies)
        self.out('model', model)
        return None
