"""``MetatrainParser``: the model, metrics and errors of an ``mtt train`` run, or the exit code that says why not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser
from ase.data import atomic_numbers, chemical_symbols

from ..calculations.metatrain import CHECKPOINT_EPOCHS, CHECKPOINT_PATH, run_folder
from ..data import PotentialData
from ..training import finite_or_none
from ..training.metatrain import model_cutoff
from ..training.metatrain_outputs import (
    CSV_FILENAME,
    OPTIONS_FILENAME,
    Metrics,
    RunEvidence,
    atomic_types,
    best_epoch,
    diagnose,
    final_error_units,
    final_errors,
    read_metrics,
    read_resolved_options,
)


def metrics_node(metrics: Metrics) -> orm.ArrayData:
    """Return the per-epoch ``metrics`` as an ``ArrayData``: one array per column, their units as an attribute.

    ``epoch`` counts the epochs completed (metatrain's index plus one), as the metrics of the MACE training do.
    """
    node = orm.ArrayData()
    for name, values in metrics.columns.items():
        node.set_array(name, values + 1 if name == 'epoch' else values)
    units = {name: unit for name, unit in metrics.units.items() if unit}
    node.base.attributes.set('units', {**units, 'epoch': 'epochs completed'})
    return node


def errors_dict(log: str) -> dict[str, Any]:
    """Return the final errors of each set, the unit of each quantity and the exported epoch (epochs completed)."""
    errors: dict[str, Any] = {name: finite_or_none(values) for name, values in final_errors(log).items()}
    exported = best_epoch(log)
    if exported is not None:
        errors['best_epoch'] = exported + 1
    errors['units'] = final_error_units(log)
    return errors


class MetatrainParser(Parser):
    """Parse the files of :class:`~aiida_trainspot.calculations.metatrain.MetatrainCalculation`.

    How the run ended is decided by :func:`~aiida_trainspot.training.metatrain_outputs.diagnose`, in a fixed order:
    out of memory, loss not finite or diverging, walltime, no standard output, any other failure of ``mtt``. The
    ``metrics`` are attached whenever ``train.csv`` can be read, also for a failed run; ``model`` and ``errors`` only
    for a run that finished. The model files come from the temporary retrieved folder, so they are stored once.
    """

    def parse(self, **kwargs) -> ExitCode:
        """Parse ``mtt.out`` and the run's ``train.csv`` and ``options_restart.yaml``, and the model files."""
        calculation = self.node.process_class
        log = self._text(self.node.get_option('output_filename'))
        folder = run_folder(self.retrieved)
        metrics, metrics_exit = self._metrics(folder)
        if metrics is not None:
            self.out('metrics', metrics_node(metrics))
        evidence = RunEvidence(
            log=log,
            stderr='\n'.join(self._text(name) or '' for name in self._stderr_names()),
            metrics=metrics,
            scheduler_out_of_memory=self.node.exit_status == self.exit_codes.ERROR_SCHEDULER_OUT_OF_MEMORY.status,
            scheduler_out_of_walltime=self.node.exit_status == self.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME.status,
            resumed='parent_folder' in self.node.inputs or 'restart_from' in self.node.inputs,
        )
        failure = diagnose(evidence)
        if failure:
            label, reason = failure
            self.logger.error(f'{label}: {reason}')
            return self.exit_codes[label].format(reason=reason)
        temporary = Path(kwargs.get('retrieved_temporary_folder') or '/nonexistent')
        for filename in (calculation._MODEL_FILENAME, calculation._CHECKPOINT_FILENAME):
            if not (temporary / filename).is_file():
                return self.exit_codes.ERROR_MODEL_MISSING.format(filename=filename)
        if metrics_exit:
            return metrics_exit
        if not len(metrics.epochs):
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(filename=CSV_FILENAME, reason='it has no epoch')
        options, options_exit = self._options(folder)
        if options_exit:
            return options_exit
        if not final_errors(log):
            reason = 'it has no error table after training'
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(filename=calculation._OUTPUT_FILENAME, reason=reason)
        try:
            model = self._model(temporary, options, log, int(metrics.epochs[-1]) + 1)
        except (KeyError, TypeError, ValueError) as exception:
            filename = calculation._MODEL_FILENAME
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(filename=filename, reason=str(exception))
        self.out('model', model)
        self.out('errors', orm.Dict(errors_dict(log)))
        return ExitCode(0)

    def _stderr_names(self) -> tuple[str, ...]:
        """Return the names of the retrieved files where ``mtt`` and the scheduler wrote their errors."""
        return (self.node.process_class._ERROR_FILENAME, self.node.get_option('scheduler_stderr') or '')

    def _text(self, name: str) -> str | None:
        """Return the content of the retrieved file ``name``, or ``None`` if it is missing or unreadable."""
        try:
            return self.retrieved.get_object_content(name) if name else None
        except (FileNotFoundError, OSError, UnicodeDecodeError):
            return None

    def _metrics(self, folder: str | None) -> tuple[Metrics | None, ExitCode | None]:
        """Return the metrics of ``train.csv`` in ``folder``, or ``None`` and the exit code that says why not."""
        text = self._text(f'{folder}/{CSV_FILENAME}') if folder else None
        if text is None:
            return None, self.exit_codes.ERROR_OUTPUT_FILES_MISSING.format(filename=CSV_FILENAME)
        try:
            return read_metrics(text), None
        except ValueError as exception:
            return None, self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(filename=CSV_FILENAME, reason=str(exception))

    def _options(self, folder: str | None) -> tuple[dict | None, ExitCode | None]:
        """Return the options metatrain resolved, or ``None`` and the exit code that says why not."""
        text = self._text(f'{folder}/{OPTIONS_FILENAME}') if folder else None
        if text is None:
            return None, self.exit_codes.ERROR_OUTPUT_FILES_MISSING.format(filename=OPTIONS_FILENAME)
        try:
            return read_resolved_options(text), None
        except ValueError as exception:
            return None, self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(
                filename=OPTIONS_FILENAME, reason=str(exception)
            )

    def _starting_model(self) -> PotentialData | None:
        """Return the model this run started from (``restart_from`` or ``foundation_model``), if any."""
        for name in ('restart_from', 'foundation_model'):
            if name in self.node.inputs:
                return self.node.inputs[name]
        return None

    def _model(self, temporary: Path, options: dict[str, Any], log: str, epochs: int) -> PotentialData:
        """Return the ``PotentialData`` of the exported model, its extensions and its checkpoint of ``epochs``."""
        calculation = self.node.process_class
        architecture = options['architecture']['name']
        start = self._starting_model()
        numbers = set(atomic_types(log)) | {atomic_numbers[symbol] for symbol in (start.species if start else ())}
        extensions = temporary / calculation._EXTENSIONS_FOLDER
        model = PotentialData(
            temporary / calculation._MODEL_FILENAME,
            architecture=architecture,
            species=[chemical_symbols[number] for number in sorted(numbers)],
            cutoff=start.cutoff if start else model_cutoff(architecture, options['architecture']['model']),
            seed=int(options['seed']),
            dtype=f'float{options["base_precision"]}',
            training_set_uuid=self.node.inputs.dataset.uuid,
            parent_model_uuid=start.uuid if start else None,
            extensions=extensions if extensions.is_dir() and any(extensions.iterdir()) else None,
        )
        model.base.repository.put_object_from_file(str(temporary / calculation._CHECKPOINT_FILENAME), CHECKPOINT_PATH)
        model.base.attributes.set(CHECKPOINT_EPOCHS, epochs)
        return model
