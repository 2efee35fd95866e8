"""``AbInitioLabellingWorkChain``: DFT energies, forces and stresses for every frame of a dataset."""

from __future__ import annotations

import pathlib
import warnings

from aiida import orm
from aiida.engine import WorkChain, while_
from aiida.plugins import WorkflowFactory
from aiida_pseudo.groups.family import PseudoPotentialFamily
from aiida_quantumespresso.workflows.protocols.utils import ProtocolMixin

from ..calculations.ase_reference import AseReferenceCalculation, validate_calculator
from ..calculations.functions.dataset import subset_dataset
from ..calculations.functions.labels import frame_structure, labels_from_pw, labels_from_reference
from ..data import PESData
from ..dataset import frame_to_atoms
from ..dft.structure_checks import check_structure
from .throttle import (
    DEFAULT_MAX_CONCURRENT_QUEUED,
    ThrottleMixin,
    default_max_concurrent,
    validate_max_concurrent,
)

PwBaseWorkChain = WorkflowFactory('quantumespresso.pw.base')

TWO_D_PBC = (True, True, False)
"""The one 2D orientation pw.x's ``assume_isolated='2D'`` handles: periodic along a and b, vacuum along c (z)."""


def validate_frames(dataset: PESData) -> str | None:
    """Return a message naming the first frame of ``dataset`` that no DFT code should get, or ``None``."""
    if len(dataset) == 0:
        return '`dataset` is empty'
    for index, frame in enumerate(dataset.iter_frames()):
        problem = check_structure(frame_to_atoms(frame))
        if problem is None and sum(frame.pbc) == 2 and tuple(frame.pbc) != TWO_D_PBC:
            problem = f'a 2D frame must be periodic along a and b with vacuum along c, not pbc={frame.pbc.tolist()}'
        if problem:
            return f'frame {index} of `dataset`: {problem}'
    return None


def validate_pw_inputs(inputs) -> str | None:
    """Return a message naming the first input that pw.x labelling cannot use, or ``None``."""
    if 'pseudo_family' not in inputs:
        return '`pseudo_family` is required to label with pw.x'
    family_label = inputs['pseudo_family'].value
    family = orm.QueryBuilder().append(PseudoPotentialFamily, filters={'label': family_label}).first(flat=True)
    if family is None:
        return f'`pseudo_family` {family_label!r} does not exist: run `aiida-trainspot setup` or install it'
    missing = sorted(set(inputs['dataset'].species) - set(family.elements))
    if missing:
        return f'`pseudo_family` {family_label!r} has no pseudopotential for {missing}'
    return None


ENGINES = {'quantumespresso.pw': 'pw', 'trainspot.ase_reference': 'reference'}
"""Calculation plugin of the code → how the work chain labels with it."""


def validate_inputs(inputs, _):
    """Return a message naming the first invalid input, checked before any calculation starts."""
    code = inputs['code']
    engine = ENGINES.get(code.default_calc_job_plugin)
    if engine is None:
        return f'`code` {code.full_label} runs `{code.default_calc_job_plugin}`, expected one of {sorted(ENGINES)}'
    protocols = AbInitioLabellingWorkChain.get_available_protocols()
    if inputs['protocol'].value not in protocols:
        return f'unknown `protocol` {inputs["protocol"].value!r}: choose from {sorted(protocols)}'
    if engine == 'reference' and 'calculator' not in inputs:
        return '`calculator` is required to label with the reference-calculator code'
    return (validate_pw_inputs(inputs) if engine == 'pw' else None) or validate_frames(inputs['dataset'])


def validate_fraction(value, _):
    """Return a message unless ``value`` is a fraction in [0, 1]."""
    if value is not None and not 0 <= value.value <= 1:
        return f'`max_failure_fraction` must lie in [0, 1], got {value.value}'
    return None


class AbInitioLabellingWorkChain(ProtocolMixin, ThrottleMixin, WorkChain):
    """Label every frame of a dataset with Quantum ESPRESSO, one ``PwBaseWorkChain`` per frame, a few at a time.

    With a code of ``trainspot.ase_reference`` (EMT, Lennard-Jones, a LAMMPS potential: **not DFT**, for tutorials and
    tests of the loop) the frames go instead in one :class:`AseReferenceCalculation` per concurrent slot.

    Each frame gets its own protocol inputs: k-point mesh from the spacing (one k-point along vacuum), convergence
    threshold from its atom count, cutoffs from the pseudopotential family, ``assume_isolated`` ``2D`` for slabs and
    ``mt`` for molecules, and enough vacuum. At most ``max_concurrent`` children run at once; a new one starts as the
    earliest running one ends. ``PwBaseWorkChain``'s error handlers deal with what they can; a frame whose DFT still
    fails goes to the ``failed_dataset`` output with its reason.
    """

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.input('dataset', valid_type=PESData, help='The frames to label.')
        spec.input(
            'code',
            valid_type=orm.AbstractCode,
            help='The `pw.x` code (plugin `quantumespresso.pw`), or the reference-calculator runner.',
        )
        spec.input(
            'calculator',
            valid_type=orm.Dict,
            required=False,
            validator=validate_calculator,
            help='The reference calculator (e.g. `{"name": "emt"}`) when `code` is the reference-calculator runner.',
        )
        spec.input(
            'pseudo_family',
            valid_type=orm.Str,
            required=False,
            help='Label of the pseudopotential family with cutoffs.',
        )
        spec.input(
            'protocol',
            valid_type=orm.Str,
            default=lambda: orm.Str(cls.get_default_protocol()),
            help='Protocol: `fast`, `balanced` or `stringent` (also the `PwBaseWorkChain` protocol of each frame).',
        )
        spec.input(
            'overrides',
            valid_type=orm.Dict,
            required=False,
            help='Overrides of the `PwBaseWorkChain` protocol inputs, applied to each frame.',
        )
        spec.input('options', valid_type=orm.Dict, required=False, help='`metadata.options` of each DFT job.')
        spec.input(
            'max_concurrent',
            valid_type=orm.Int,
            required=False,
            validator=validate_max_concurrent,
            help='Most DFT children at once; default: cores over MPI ranks per job on a local computer, '
            f'{DEFAULT_MAX_CONCURRENT_QUEUED} where a scheduler queues the jobs.',
        )
        spec.input(
            'max_failure_fraction',
            valid_type=orm.Float,
            required=False,
            validator=validate_fraction,
            help='Largest fraction of frames whose DFT may fail before the work chain fails; default from protocol.',
        )
        spec.input(
            'vacuum',
            valid_type=orm.Float,
            required=False,
            help='Å of vacuum a non-periodic direction needs before DFT (padded otherwise); default from protocol.',
        )
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            while_(cls.has_jobs)(cls.run_labelling, cls.inspect_labelling),
            cls.results,
        )
        spec.output('labelled_dataset', valid_type=PESData, help='The frames whose DFT succeeded, with their labels.')
        spec.output(
            'failed_dataset',
            valid_type=PESData,
            required=False,
            help='The frames whose DFT failed, unlabelled, each with its `failure_reason`.',
        )
        spec.exit_code(
            410,
            'ERROR_TOO_MANY_FAILURES',
            message='The DFT of {failed} of {total} frames failed, more than `max_failure_fraction` ({limit}).',
        )

    @classmethod
    def get_protocol_filepath(cls) -> pathlib.Path:
        """Return the path of the protocol file of this work chain."""
        return pathlib.Path(__file__).parent / 'protocols' / 'labelling.yaml'

    def setup(self):
        """Decide the settings of the run: protocol values, the throttle, the frames to label."""
        protocol = self.get_protocol_inputs(self.inputs.protocol.value)
        options = self.inputs.options.get_dict() if 'options' in self.inputs else {}
        self.ctx.vacuum = self.inputs.vacuum.value if 'vacuum' in self.inputs else protocol['vacuum']
        self.ctx.max_failure_fraction = (
            self.inputs.max_failure_fraction.value
            if 'max_failure_fraction' in self.inputs
            else protocol['max_failure_fraction']
        )
        self.ctx.max_concurrent = (
            self.inputs.max_concurrent.value
            if 'max_concurrent' in self.inputs
            else default_max_concurrent(self.inputs.code, options)
        )
        self.ctx.options = options
        self.ctx.engine = ENGINES[self.inputs.code.default_calc_job_plugin]
        frames = list(range(len(self.inputs.dataset)))
        if self.ctx.engine == 'pw':
            self.queue_jobs([[index] for index in frames])
        else:  # one job per slot: the reference calculators cost little per frame, jobs much more
            size = -(-len(frames) // self.ctx.max_concurrent)
            self.queue_jobs([frames[start : start + size] for start in range(0, len(frames), size)])
        self.ctx.results, self.ctx.failures = {}, {}
        self.report(
            f'labelling {len(frames)} frames of PESData<{self.inputs.dataset.pk}> in {len(self.ctx.pending)} jobs, '
            f'at most {self.ctx.max_concurrent} at once'
        )

    def run_labelling(self):
        """Start children until ``max_concurrent`` run, then wait for the earliest running one."""
        return self.start_jobs(
            lambda job: self._pw_builder(job[0]) if self.ctx.engine == 'pw' else self._reference_builder(job)
        )

    def _pw_builder(self, index: int):
        """Return the ``PwBaseWorkChain`` builder of frame ``index``, its structure made by a calcfunction."""
        dataset = self.inputs.dataset
        structure = frame_structure(
            dataset, orm.Int(index), orm.Float(self.ctx.vacuum), metadata={'call_link_label': f'structure_{index}'}
        )
        self.ctx.results[f'structure_{index}'] = structure
        original = dataset.get_frame(index).cell
        if not (abs(structure.get_ase().cell.array - original) < 1e-8).all():
            self.report(f'frame {index}: padded to {self.ctx.vacuum} Å of vacuum along its non-periodic directions')
        overrides = {'clean_workdir': True, **(self.inputs.overrides.get_dict() if 'overrides' in self.inputs else {})}
        overrides['pseudo_family'] = self.inputs.pseudo_family.value
        handler_overrides = overrides.pop('handler_overrides', None)  # the protocol does not pass these on
        system = overrides.setdefault('pw', {}).setdefault('parameters', {}).setdefault('SYSTEM', {})
        if not any(structure.pbc):
            system.setdefault('assume_isolated', 'mt')
        if not all(structure.pbc):
            overrides['pw']['parameters'].setdefault('CONTROL', {})['tstress'] = False
        with warnings.catch_warnings():  # aiida-quantumespresso warns about non-3D cells: handled above
            warnings.simplefilter('ignore')
            builder = PwBaseWorkChain.get_builder_from_protocol(
                self.inputs.code, structure, self.inputs.protocol.value, overrides=overrides, options=self.ctx.options
            )
        if handler_overrides:
            builder.handler_overrides = orm.Dict(handler_overrides)
        builder.metadata.call_link_label = f'pw_{index}'
        return builder

    def _reference_builder(self, job: list[int]):
        """Return the ``AseReferenceCalculation`` builder of the frames ``job`` (consecutive indices)."""
        frames = subset_dataset(
            self.inputs.dataset, indices=orm.List(job), metadata={'call_link_label': f'frames_{job[0]}'}
        )
        builder = AseReferenceCalculation.get_builder()
        builder.code, builder.dataset, builder.calculator = self.inputs.code, frames, self.inputs.calculator
        if self.ctx.options:
            builder.metadata.options = self.ctx.options
        builder.metadata.call_link_label = f'reference_{job[0]}'
        return builder

    def inspect_labelling(self):
        """Collect every child that has ended since the last look: its results, or why it failed."""
        self.collect_ended(self._collect)

    def _collect(self, job: list[int], child: orm.ProcessNode) -> None:
        """Keep the results of the ended ``child`` that labelled the frames ``job``, or record why it failed."""
        index = job[0]
        if self.ctx.engine == 'reference' and 'labelled_dataset' in child.outputs:  # frames may fail one by one
            self.ctx.results[f'chunk_{index}'] = child.outputs.labelled_dataset
        elif child.is_finished_ok:
            self.ctx.results[f'parameters_{index}'] = child.outputs.output_parameters
            self.ctx.results[f'trajectory_{index}'] = child.outputs.output_trajectory
        else:
            reason = (
                f'{child.process_label}<{child.pk}> ended {child.process_state.value} '
                f'with exit status {child.exit_status}: {child.exit_message}'
            )
            self.ctx.failures.update({str(frame): reason for frame in job})
            self.report(f'frames {job[0]}-{job[-1]}: {reason}' if len(job) > 1 else f'frame {index}: {reason}')

    def results(self):
        """Attach the labelled frames and the failed ones; fail if too many failed."""
        results = {key: node for key, node in self.ctx.results.items() if key.split('_')[-1] not in self.ctx.failures}
        collect = labels_from_pw if self.ctx.engine == 'pw' else labels_from_reference
        outputs = collect(
            self.inputs.dataset, orm.Dict(self.ctx.failures), **results, metadata={'call_link_label': 'collect_labels'}
        )
        self.out('labelled_dataset', outputs['labelled'])
        if 'failed' in outputs:
            self.out('failed_dataset', outputs['failed'])
        total = len(self.inputs.dataset)
        failed = total - len(outputs['labelled'])
        self.report(f'labelled {total - failed} of {total} frames; {failed} failed')
        if failed > self.ctx.max_failure_fraction * total:
            return self.exit_codes.ERROR_TOO_MANY_FAILURES.format(
                failed=failed, total=total, limit=self.ctx.max_failure_fraction
            )
        return None
