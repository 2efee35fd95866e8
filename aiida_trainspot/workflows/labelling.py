"""``AbInitioLabellingWorkChain``: DFT energies, forces and stresses for every frame of a dataset."""

from __future__ import annotations

import pathlib
import warnings

import numpy as np
from aiida import orm
from aiida.engine import WorkChain, while_
from aiida.plugins import WorkflowFactory
from aiida_pseudo.groups.family import PseudoPotentialFamily
from aiida_quantumespresso.workflows.protocols.utils import ProtocolMixin

from ..calculations.aims import AimsCalculation, check_species
from ..calculations.ase_reference import AseReferenceCalculation, validate_calculator
from ..calculations.functions.dataset import subset_dataset
from ..calculations.functions.labels import frame_structures, labels_from_aims, labels_from_pw, labels_from_reference
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

STRUCTURE_BATCH = (8, 64)
"""Fewest and most frames whose structures (and pw.x k-points) one calcfunction makes: 4 × ``max_concurrent`` between.
"""

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
    missing = sorted(set(inputs['dataset'].species) - set(family.elements)) if 'dataset' in inputs else []
    if missing:
        return f'`pseudo_family` {family_label!r} has no pseudopotential for {missing}'
    return None


def validate_aims_inputs(inputs) -> str | None:
    """Return a message naming the first input that FHI-aims labelling cannot use, or ``None``."""
    aims = inputs.get('aims', {})
    if 'species' not in aims or 'parameters' not in aims:
        return '`aims.species` and `aims.parameters` are required to label with FHI-aims'
    if 'dataset' not in inputs:
        return None
    basis = aims['basis'].value if 'basis' in aims else 'light'
    message = check_species(aims['species'], basis, sorted(inputs['dataset'].species))
    return message.replace('`species`', '`aims.species`', 1) if message else None


ENGINES = {'quantumespresso.pw': 'pw', 'trainspot.aims': 'aims', 'trainspot.ase_reference': 'reference'}
"""Calculation plugin of the code → how the work chain labels with it."""

ENGINE_CHECKS = {'pw': validate_pw_inputs, 'aims': validate_aims_inputs}
"""Engine → the check of the inputs it needs, beyond the frames."""


def validate_inputs(inputs, _):
    """Return a message naming the first invalid input, checked before any calculation starts."""
    code = inputs['code']
    engine = ENGINES.get(code.default_calc_job_plugin)
    if engine is None:
        return f'`code` {code.full_label} runs `{code.default_calc_job_plugin}`, expected one of {sorted(ENGINES)}'
    protocols = AbInitioLabellingWorkChain.get_available_protocols()
    protocol = inputs['protocol'].value if 'protocol' in inputs else AbInitioLabellingWorkChain.get_default_protocol()
    if protocol not in protocols:
        return f'unknown `protocol` {protocol!r}: choose from {sorted(protocols)}'
    if engine == 'reference' and 'calculator' not in inputs:
        return '`calculator` is required to label with the reference-calculator code'
    message = ENGINE_CHECKS[engine](inputs) if engine in ENGINE_CHECKS else None
    if message or 'dataset' not in inputs:  # exposed without `dataset`, the frames are checked by the caller
        return message
    return validate_frames(inputs['dataset'])


def validate_fraction(value, _):
    """Return a message unless ``value`` is a fraction in [0, 1]."""
    if value is not None and not 0 <= value.value <= 1:
        return f'`max_failure_fraction` must lie in [0, 1], got {value.value}'
    return None


class AbInitioLabellingWorkChain(ProtocolMixin, ThrottleMixin, WorkChain):
    """Label every frame of a dataset with Quantum ESPRESSO or FHI-aims, one child per frame, a few at a time.

    With a code of ``quantumespresso.pw`` each frame goes to aiida-quantumespresso's ``PwBaseWorkChain`` with its own
    protocol inputs: k-point mesh from the spacing (one k-point along vacuum), convergence threshold from its atom
    count, cutoffs from the pseudopotential family, ``assume_isolated`` ``2D`` for slabs and ``mt`` for molecules, and
    enough vacuum; its error handlers deal with what they can. With a code of ``trainspot.aims`` each frame goes to
    an :class:`AimsCalculation` (inputs ``aims``; k-points from the protocol's spacing for periodic frames, none for
    molecules). With a code of ``trainspot.ase_reference`` (EMT, Lennard-Jones, a LAMMPS potential: **not DFT**, for
    tutorials and tests of the loop) the frames go in one :class:`AseReferenceCalculation` per concurrent slot.

    At most ``max_concurrent`` DFT jobs run at once: as soon as the job of any child ends (before its outputs are
    retrieved and parsed), the next child starts. A frame whose DFT fails goes to ``failed_dataset`` with its reason.
    """

    free_slot_at_job_end = True
    throttle_poll_seconds = 0.5

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.input('dataset', valid_type=PESData, help='The frames to label.')
        spec.input(
            'code',
            valid_type=orm.AbstractCode,
            help='The `pw.x` code (plugin `quantumespresso.pw`), the FHI-aims code (plugin `trainspot.aims`), or the '
            'reference-calculator runner (plugin `trainspot.ase_reference`).',
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
            help='Label of the pseudopotential family with cutoffs (pw.x).',
        )
        spec.expose_inputs(
            AimsCalculation,
            namespace='aims',
            exclude=('code', 'structure', 'metadata', 'monitors', 'remote_folder'),
            namespace_options={
                'required': False,
                'populate_defaults': False,
                'help': 'FHI-aims inputs of every frame (`species`, `parameters`, `basis`; `kpoints_spacing` defaults '
                "to the protocol's), when `code` is an FHI-aims code.",
            },
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
        self.ctx.kpoints = {}
        if self.ctx.engine == 'pw':
            pw_protocol = PwBaseWorkChain.get_protocol_inputs(self.inputs.protocol.value, self._pw_overrides())
            self.ctx.kpoints_distance = pw_protocol['kpoints_distance']
            self.ctx.kpoints_force_parity = pw_protocol.get('kpoints_force_parity', False)
        if self.ctx.engine == 'aims':
            aims = self.inputs.aims
            self.ctx.kpoints_spacing = (
                aims.kpoints_spacing.value if 'kpoints_spacing' in aims else protocol['kpoints_spacing']
            )
        frames = list(range(len(self.inputs.dataset)))
        if self.ctx.engine != 'reference':
            self.queue_jobs([[index] for index in frames])
        else:  # one job per slot: the reference calculators cost little per frame, jobs much more
            size = -(-len(frames) // self.ctx.max_concurrent)
            self.queue_jobs([frames[start : start + size] for start in range(0, len(frames), size)])
        self.ctx.results, self.ctx.failures = {}, {}  # results by pk: lighter in every checkpoint than nodes
        self.report(
            f'labelling {len(frames)} frames of PESData<{self.inputs.dataset.pk}> in {len(self.ctx.pending)} jobs, '
            f'at most {self.ctx.max_concurrent} at once'
        )

    def run_labelling(self):
        """Start children until ``max_concurrent`` run, then wait until any running one ends."""
        builders = {'pw': self._pw_builder, 'aims': self._aims_builder, 'reference': self._reference_builder}
        return self.start_jobs(builders[self.ctx.engine])

    def _structure(self, index: int) -> orm.StructureData:
        """Return the structure of frame ``index`` that the DFT code gets (vacuum padded), made by a calcfunction.

        The structures are made in batches: frame ``index`` and the next queued ones, by one ``frame_structures``
        (with their pw.x k-point meshes), so that most frames find theirs ready when their slot frees up.
        """
        if f'structure_{index}' not in self.ctx.results:
            size = min(max(4 * self.ctx.max_concurrent, STRUCTURE_BATCH[0]), STRUCTURE_BATCH[1])
            queued = [
                frame for job in self.ctx.pending for frame in job if f'structure_{frame}' not in self.ctx.results
            ]
            self._make_structures([index, *queued][:size])
        return orm.load_node(self.ctx.results[f'structure_{index}'])

    def _make_structures(self, indices: list[int]) -> None:
        """Make the structures (and, for pw.x, k-points) of the frames ``indices`` by one calcfunction."""
        inputs = {'dataset': self.inputs.dataset, 'indices': orm.List(indices), 'vacuum': orm.Float(self.ctx.vacuum)}
        if self.ctx.engine == 'pw':
            inputs['kpoints_distance'] = orm.Float(self.ctx.kpoints_distance)
            inputs['kpoints_force_parity'] = orm.Bool(self.ctx.kpoints_force_parity)
        outputs = frame_structures(**inputs, metadata={'call_link_label': f'structures_{indices[0]}'})
        padded = []
        with self.inputs.dataset.open() as reader:
            for index in indices:
                structure = outputs[f'structure_{index}']
                self.ctx.results[f'structure_{index}'] = structure.pk
                if f'kpoints_{index}' in outputs:
                    self.ctx.kpoints[str(index)] = outputs[f'kpoints_{index}'].pk
                if not np.allclose(structure.cell, reader.read(index, index + 1).frame(0).cell, rtol=0, atol=1e-8):
                    padded.append(index)
        if padded:
            self.report(f'frames {padded}: padded to {self.ctx.vacuum} Å of vacuum along their non-periodic directions')

    def _pw_overrides(self, structure: orm.StructureData | None = None) -> dict:
        """Return the ``PwBaseWorkChain`` protocol overrides of every frame, or of the frame of ``structure``."""
        overrides = {'clean_workdir': True, **(self.inputs.overrides.get_dict() if 'overrides' in self.inputs else {})}
        overrides['pseudo_family'] = self.inputs.pseudo_family.value
        overrides.pop('handler_overrides', None)  # the protocol does not pass these on: set on the builder
        if structure is not None:
            system = overrides.setdefault('pw', {}).setdefault('parameters', {}).setdefault('SYSTEM', {})
            if not any(structure.pbc):
                system.setdefault('assume_isolated', 'mt')
            if not all(structure.pbc):
                overrides['pw']['parameters'].setdefault('CONTROL', {})['tstress'] = False
        return overrides

    def _pw_builder(self, job: list[int]):
        """Return the ``PwBaseWorkChain`` builder of the frame ``job`` (one index), with its k-point mesh made."""
        (index,) = job
        structure = self._structure(index)
        with warnings.catch_warnings():  # aiida-quantumespresso warns about non-3D cells: handled by the overrides
            warnings.simplefilter('ignore')
            builder = PwBaseWorkChain.get_builder_from_protocol(
                self.inputs.code,
                structure,
                self.inputs.protocol.value,
                overrides=self._pw_overrides(structure),
                options=self.ctx.options,
            )
        builder.pop('kpoints_distance', None)
        builder.pop('kpoints_force_parity', None)
        builder.kpoints = orm.load_node(self.ctx.kpoints[str(index)])
        handler_overrides = self.inputs.overrides.get('handler_overrides') if 'overrides' in self.inputs else None
        if handler_overrides:
            builder.handler_overrides = orm.Dict(handler_overrides)
        builder.metadata.call_link_label = f'pw_{index}'
        return builder

    def _aims_builder(self, job: list[int]):
        """Return the ``AimsCalculation`` builder of the frame ``job`` (one index): k-points only if periodic."""
        (index,) = job
        structure = self._structure(index)
        builder = AimsCalculation.get_builder()
        builder.update(self.exposed_inputs(AimsCalculation, namespace='aims'))
        builder.code, builder.structure = self.inputs.code, structure
        if any(structure.pbc):
            builder.kpoints_spacing = orm.Float(self.ctx.kpoints_spacing)
        else:
            builder.pop('kpoints_spacing', None)
        if self.ctx.options:
            builder.metadata.options = self.ctx.options
        builder.metadata.call_link_label = f'aims_{index}'
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
            self.ctx.results[f'chunk_{index}'] = child.outputs.labelled_dataset.pk
        elif child.is_finished_ok:
            self.ctx.results[f'parameters_{index}'] = child.outputs.output_parameters.pk
            if self.ctx.engine == 'aims':
                self.ctx.results[f'arrays_{index}'] = child.outputs.output_arrays.pk
            else:
                self.ctx.results[f'trajectory_{index}'] = child.outputs.output_trajectory.pk
        else:
            reason = (
                f'{child.process_label}<{child.pk}> ended {child.process_state.value} '
                f'with exit status {child.exit_status}: {child.exit_message}'
            )
            self.ctx.failures.update({str(frame): reason for frame in job})
            self.report(f'frames {job[0]}-{job[-1]}: {reason}' if len(job) > 1 else f'frame {index}: {reason}')

    def results(self):
        """Attach the labelled frames and the failed ones; fail if too many failed."""
        results = {
            key: orm.load_node(pk)
            for key, pk in self.ctx.results.items()
            if key.split('_')[-1] not in self.ctx.failures
        }
        collect = {'pw': labels_from_pw, 'aims': labels_from_aims, 'reference': labels_from_reference}[self.ctx.engine]
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
