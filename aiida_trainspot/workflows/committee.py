"""``CommitteeTrainingWorkChain``: N models that differ by seed (and optionally data and architecture).

Their disagreement is the uncertainty the active-learning loop steers by, so members must differ: every member gets
its own seed (``seed + k``), and optionally its own random sample of the training frames (aims-PAX) or another
architecture (MACE and metatrain members in one committee). Members are trained through the restart work chains of
:mod:`aiida_trainspot.workflows.training`, at most ``max_concurrent`` at a time.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import WorkChain, while_

from ..calculations.functions.dataset import sample_training_frames, split_dataset
from ..data import PESData, PotentialData
from ..training.mace import ARCHITECTURE_KEYS
from .throttle import ThrottleMixin, default_max_concurrent, validate_max_concurrent
from .training import MaceTrainingWorkChain, MetatrainTrainingWorkChain

ENGINES = {'mace': MaceTrainingWorkChain, 'metatrain': MetatrainTrainingWorkChain}
"""Input namespace → the work chain that trains a member with it."""


def validate_architectures(value: orm.List | None, _) -> str | None:
    """Return a message unless every entry of ``architectures`` names an engine."""
    if value is not None:
        unknown = sorted(set(value.get_list()) - set(ENGINES))
        if unknown or not value.get_list():
            return f'`architectures` must list engines among {sorted(ENGINES)}, got {value.get_list()}'
    return None


def validate_inputs(inputs, _) -> str | None:
    """Return a message if a member has no engine inputs, or the committee is too small."""
    given = [engine for engine in ENGINES if engine in inputs]
    if not given:
        return f'give the inputs of at least one engine: {sorted(ENGINES)}'
    wanted = inputs['architectures'].get_list() if 'architectures' in inputs else given
    missing = sorted(set(wanted) - set(given))
    if missing:
        return f'`architectures` names {missing} but their inputs are missing'
    if inputs['num_members'].value < 2:
        return f'`num_members` must be at least 2 for a committee, got {inputs["num_members"].value}'
    if 'subset_fraction' in inputs and not 0 < inputs['subset_fraction'].value <= 1:
        return f'`subset_fraction` must lie in (0, 1], got {inputs["subset_fraction"].value}'
    members = {f'member_{member}' for member in range(inputs['num_members'].value)}
    unknown = sorted(set(inputs.get('restart_from', {})) - members)
    if unknown:
        return f'`restart_from` names {unknown}, but the members are {sorted(members)}'
    return None


class CommitteeTrainingWorkChain(ThrottleMixin, WorkChain):
    """Train a committee of models on one dataset, members differing by seed, data sample or architecture."""

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.input(
            'dataset',
            valid_type=PESData,
            help='Labelled frames; those without a split tag get one first (persistent, 80/10/10, seeded).',
        )
        spec.input('num_members', valid_type=orm.Int, default=lambda: orm.Int(4), help='Members of the committee.')
        spec.input('seed', valid_type=orm.Int, default=lambda: orm.Int(0), help='Member k trains with seed `seed + k`.')
        spec.input(
            'architectures',
            valid_type=orm.List,
            required=False,
            validator=validate_architectures,
            help='Engine of each member in turn, e.g. `["mace", "metatrain"]`; default: the engines given.',
        )
        spec.input(
            'subset_fraction',
            valid_type=orm.Float,
            required=False,
            help='Give each member its own random sample of this fraction of the training frames (aims-PAX).',
        )
        spec.input(
            'max_concurrent',
            valid_type=orm.Int,
            required=False,
            validator=validate_max_concurrent,
            help='Most members training at once; default: cores over the cores of one job on a local computer.',
        )
        spec.input_namespace(
            'restart_from',
            valid_type=PotentialData,
            dynamic=True,
            required=False,
            help='Continual learning: member `member_<k>` starts from this model (e.g. the previous committee).',
        )
        for engine, workchain in ENGINES.items():
            spec.expose_inputs(
                workchain,
                namespace=engine,
                exclude=('train.dataset', 'train.seed', 'train.restart_from'),
                namespace_options={
                    'required': False,
                    'populate_defaults': False,
                    'help': f'Inputs of {engine} members.',
                },
            )
        spec.inputs.validator = validate_inputs
        spec.outline(cls.setup, while_(cls.has_jobs)(cls.run_members, cls.inspect_members), cls.results)
        spec.output_namespace('models', dynamic=True, help='The model of each member that trained: `member_<k>`.')
        spec.output_namespace('metrics', dynamic=True, help='The per-epoch metrics of each member.')
        spec.output_namespace('errors', dynamic=True, help='The final errors of each member on train/valid/test.')
        spec.output('dataset', valid_type=PESData, help='The dataset the members trained on, with its split tags.')
        spec.exit_code(
            410, 'ERROR_TOO_FEW_MEMBERS', message='Only {trained} of {wanted} members trained: see the report.'
        )

    def setup(self):
        """Tag the frames, choose each member's engine and the throttle."""
        self.ctx.dataset = split_dataset(self.inputs.dataset, self.inputs.seed, metadata={'call_link_label': 'split'})
        engines = [engine for engine in ENGINES if engine in self.inputs]
        cycle = self.inputs.architectures.get_list() if 'architectures' in self.inputs else engines
        self.ctx.engines = [cycle[member % len(cycle)] for member in range(self.inputs.num_members.value)]
        first = self.inputs[self.ctx.engines[0]].train
        options = dict(first.get('metadata', {}).get('options', {}))
        self.ctx.max_concurrent = (
            self.inputs.max_concurrent.value
            if 'max_concurrent' in self.inputs
            else default_max_concurrent(first.code, options)
        )
        self.queue_jobs(list(range(self.inputs.num_members.value)))
        self.ctx.members = {}
        self.report(
            f'training {len(self.ctx.engines)} members ({self.ctx.engines}), at most {self.ctx.max_concurrent} at once'
        )

    def run_members(self):
        """Start members until the slots are full; wait for the earliest running one."""
        return self.start_jobs(self._member_builder)

    def _member_builder(self, member: int):
        """Return the builder of the training work chain of ``member``."""
        engine = self.ctx.engines[member]
        workchain = ENGINES[engine]
        inputs = AttributeDict(self.exposed_inputs(workchain, namespace=engine))
        seed = orm.Int(self.inputs.seed.value + member)
        dataset = self.ctx.dataset
        if 'subset_fraction' in self.inputs:
            dataset = sample_training_frames(
                dataset, self.inputs.subset_fraction, seed, metadata={'call_link_label': f'sample_{member}'}
            )
        inputs.train = AttributeDict({**inputs.train, 'dataset': dataset, 'seed': seed})
        if f'member_{member}' in self.inputs.get('restart_from', {}):
            inputs.train.restart_from = self.inputs.restart_from[f'member_{member}']
            if engine == 'mace':  # the starting model fixes the architecture: its keys cannot be set again
                hyperparameters = inputs.train.hyperparameters.get_dict()
                kept = {key: value for key, value in hyperparameters.items() if key not in ARCHITECTURE_KEYS}
                if kept != hyperparameters:
                    inputs.train.hyperparameters = orm.Dict(kept)
        inputs.metadata = {'call_link_label': f'member_{member}'}
        builder = workchain.get_builder()
        builder.update(inputs)
        return builder

    def inspect_members(self):
        """Keep the outputs of every member that ended well; report the others."""
        self.collect_ended(self._collect)

    def _collect(self, member: int, child: orm.ProcessNode) -> None:
        """Keep the outputs of ``member`` if its training succeeded."""
        if child.is_finished_ok:
            self.ctx.members[str(member)] = child
            return
        self.report(
            f'member {member}: {child.process_label}<{child.pk}> ended with exit status {child.exit_status}: '
            f'{child.exit_message}'
        )

    def results(self):
        """Attach the members' models, metrics and errors; fail if fewer than two trained."""
        self.out('dataset', self.ctx.dataset)
        for member, child in sorted(self.ctx.members.items(), key=lambda item: int(item[0])):
            self.out(f'models.member_{member}', child.outputs.model)
            for name in ('metrics', 'errors'):
                if name in child.outputs:
                    self.out(f'{name}.member_{member}', child.outputs[name])
        trained, wanted = len(self.ctx.members), self.inputs.num_members.value
        self.report(f'{trained} of {wanted} members trained')
        if trained < 2:
            return self.exit_codes.ERROR_TOO_FEW_MEMBERS.format(trained=trained, wanted=wanted)
        return None
