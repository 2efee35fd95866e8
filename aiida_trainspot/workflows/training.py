"""Training work chains: one trainer run made robust by restart handlers, per training engine.

:class:`MaceTrainingWorkChain` wraps :class:`~aiida_trainspot.calculations.mace_train.MaceTrainCalculation` and
:class:`MetatrainTrainingWorkChain` wraps :class:`~aiida_trainspot.calculations.metatrain.MetatrainCalculation`.
Both CalcJobs share the exit codes the handlers react to, so the handlers are written once, here:

- 400 out of walltime: run again from the checkpoints of the run that was stopped (its ``remote_folder``);
- 410 loss not finite or diverging: start again with a learning rate ten times smaller;
- 420 out of memory: start again with half the batch size.
"""

from __future__ import annotations

import copy
from typing import Any

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ExitCode, ProcessHandlerReport, process_handler, while_

from ..calculations.mace_train import MaceTrainCalculation
from ..calculations.metatrain import MetatrainCalculation
from ..training.mace import MaceHyperparameters
from ..training.metatrain import default_hypers, parse_hyperparameters

LEARNING_RATE_FACTOR = 0.1
"""A diverging loss rarely recovers from a halved learning rate; an order of magnitude is the usual remedy."""


class TrainingWorkChain(BaseRestartWorkChain):
    """Run a trainer CalcJob until it gives a model, fixing what its restart handlers know how to fix.

    Subclasses name the CalcJob (``_process_class``) and where their hyperparameters keep the learning rate and
    the batch size; the inputs of the CalcJob are exposed in the namespace ``train``.
    """

    _process_class = None
    _learning_rate_key: tuple[str, ...] = ()
    _batch_size_key: tuple[str, ...] = ()

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.expose_inputs(cls._process_class, namespace='train')
        spec.expose_outputs(cls._process_class)
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(cls.run_process, cls.inspect_process),
            cls.results,
        )
        spec.exit_code(
            401, 'ERROR_MAX_ITERATIONS_EXCEEDED', message='The trainer failed too many times: see the report.'
        )
        spec.exit_code(
            402, 'ERROR_UNRECOVERABLE_FAILURE', message='The trainer failed in a way no handler can fix: {reason}'
        )

    def setup(self):
        """Prepare the inputs of the first run."""
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(self._process_class, 'train'))

    def _hyperparameters(self) -> dict[str, Any]:
        """Return a copy of the hyperparameters the next run gets."""
        return (
            copy.deepcopy(self.ctx.inputs['hyperparameters'].get_dict()) if 'hyperparameters' in self.ctx.inputs else {}
        )

    def _current(self, key: tuple[str, ...]) -> Any:
        """Return the value of the hyperparameter at ``key`` the runs have used so far (given or default)."""
        values: Any = self._hyperparameters()
        for part in key:
            if not isinstance(values, dict) or part not in values:
                return self._default(key)
            values = values[part]
        return values

    def _default(self, key: tuple[str, ...]) -> Any:
        """Return the trainer's default value of the hyperparameter at ``key``."""
        raise NotImplementedError

    def _set(self, key: tuple[str, ...], value: Any) -> None:
        """Set the hyperparameter at ``key`` to ``value`` for the next run."""
        values = self._hyperparameters()
        target = values
        for part in key[:-1]:
            target = target.setdefault(part, {})
        target[key[-1]] = value
        self.ctx.inputs['hyperparameters'] = orm.Dict(values)

    @process_handler(priority=600, exit_codes=[ExitCode(400)])
    def handle_out_of_walltime(self, calculation):
        """Run again from the checkpoints the stopped run left in its remote folder."""
        self.ctx.inputs['parent_folder'] = calculation.outputs.remote_folder
        self.report(
            f'{calculation.process_label}<{calculation.pk}> ran out of walltime: continuing from its checkpoint'
        )
        return ProcessHandlerReport(do_break=True)

    @process_handler(priority=500, exit_codes=[ExitCode(410)])
    def handle_loss_not_finite(self, calculation):
        """Start again from scratch with a learning rate ten times smaller."""
        rate = self._current(self._learning_rate_key)
        self._set(self._learning_rate_key, rate * LEARNING_RATE_FACTOR)
        self.ctx.inputs.pop('parent_folder', None)  # its checkpoints hold the diverged weights
        self.report(
            f'{calculation.process_label}<{calculation.pk}>: {calculation.exit_message}; learning rate {rate:g} -> '
            f'{rate * LEARNING_RATE_FACTOR:g}'
        )
        return ProcessHandlerReport(do_break=True)

    @process_handler(priority=400, exit_codes=[ExitCode(420)])
    def handle_out_of_memory(self, calculation):
        """Start again with half the batch size, unless it is already one frame."""
        size = self._current(self._batch_size_key)
        if size <= 1:
            reason = f'{calculation.process_label}<{calculation.pk}> ran out of memory with batches of one frame'
            return ProcessHandlerReport(True, self.exit_codes.ERROR_UNRECOVERABLE_FAILURE.format(reason=reason))
        self._set(self._batch_size_key, size // 2)
        self.ctx.inputs.pop('parent_folder', None)
        self.report(
            f'{calculation.process_label}<{calculation.pk}> ran out of memory: batch size {size} -> {size // 2}'
        )
        return ProcessHandlerReport(do_break=True)


class MaceTrainingWorkChain(TrainingWorkChain):
    """Train one MACE model with ``mace_run_train``, restarting on walltime, diverging loss and out of memory."""

    _process_class = MaceTrainCalculation
    _learning_rate_key = ('lr',)
    _batch_size_key = ('batch_size',)

    def _default(self, key: tuple[str, ...]) -> Any:
        """Return the default of :class:`~aiida_trainspot.training.mace.MaceHyperparameters`."""
        return getattr(MaceHyperparameters(), key[-1])


class MetatrainTrainingWorkChain(TrainingWorkChain):
    """Train one metatrain model (PET, SOAP-BPNN) with ``mtt train``, restarting as :class:`TrainingWorkChain`."""

    _process_class = MetatrainCalculation
    _learning_rate_key = ('training', 'learning_rate')
    _batch_size_key = ('training', 'batch_size')

    def _default(self, key: tuple[str, ...]) -> Any:
        """Return metatrain's default for the architecture the hyperparameters choose."""
        architecture = parse_hyperparameters(self._hyperparameters()).architecture
        values: Any = default_hypers(architecture)
        for part in key:
            values = values[part]
        return values
