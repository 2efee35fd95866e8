"""``CommitteeTrainingWorkChain``: N models that differ by seed (and optionally data and architecture).

Their disagreement is the uncertainty the active-learning loop steers by, so members must differ: every member gets
its own seed (``seed + k``), and optionally its own random sample of the training frames, its own share of them
(``distinct_subsets``, aims-PAX) or another architecture (MACE and metatrain members in one committee). Members are
trained through the restart work chains of :mod:`aiida_trainspot.workflows.training`, at most ``max_concurrent`` at a
time. In continual learning a member starts from a model (``restart_from``: its weights, a fresh optimizer) or, for
MACE, goes on from the checkpoint of a run of its own (``resume_from``: weights, optimizer and learning-rate schedule).
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import WorkChain, while_

from ..calculations.functions.dataset import member_training_frames, sample_training_frames, split_dataset
from ..calculations.mace_train import _check_parent_folder
from ..data import PESData, PotentialData
from ..training.mace import ARCHITECTURE_KEYS, MaceHyperparameters
from .throttle import ThrottleMixin, default_max_concurrent, validate_max_concurrent
from .training import MaceTrainingWorkChain, MetatrainTrainingWorkChain

ENGINES = {'mace': MaceTrainingWorkChain, 'metatrain': MetatrainTrainingWorkChain}
"""Input namespace → the work chain that trains a member with it."""


EPOCH_KEYS = {'mace': ('max_num_epochs',), 'metatrain': ('training', 'num_epochs')}
"""Engine → where its hyperparameters hold the number of epochs of a run."""


def with_epochs(inputs: AttributeDict, epochs: int) -> None:
    """Set the epochs of a run in the hyperparameters of every engine of the committee ``inputs``."""
    for engine, key in EPOCH_KEYS.items():
        if engine not in inputs:
            continue
        train = inputs[engine].train
        values = train['hyperparameters'].get_dict() if 'hyperparameters' in train else {}
        target = values
        for part in key[:-1]:
            target = target.setdefault(part, {})
        target[key[-1]] = epochs
        stage = AttributeDict(inputs[engine])
        stage.train = AttributeDict({**train, 'hyperparameters': orm.Dict(values)})
        inputs[engine] = stage


def without_architecture(hyperparameters: dict) -> dict:
    """Return MACE ``hyperparameters`` without the architecture keys: a starting model fixes the architecture."""
    return {key: value for key, value in hyperparameters.items() if key not in ARCHITECTURE_KEYS}


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
    if 'subset_fraction' in inputs and 'distinct_subsets' in inputs and inputs['distinct_subsets'].value:
        return (
            '`distinct_subsets` and `subset_fraction` exclude each other: members get either their own share of the '
            'training frames or a random sample of them'
        )
    members = {f'member_{member}' for member in range(inputs['num_members'].value)}
    for name in ('restart_from', 'resume_from'):
        unknown = sorted(set(inputs.get(name, {})) - members)
        if unknown:
            return f'`{name}` names {unknown}, but the members are {sorted(members)}'
    return _check_resume_from(inputs)


def member_engines(inputs) -> list[str]:
    """Return the engine of every member: ``architectures`` in turn, else the engines given in turn."""
    given = [engine for engine in ENGINES if engine in inputs]
    cycle = inputs['architectures'].get_list() if 'architectures' in inputs else given
    return [cycle[member % len(cycle)] for member in range(inputs['num_members'].value)]


def checkpoint_epoch(folder: orm.RemoteData) -> int | None:
    """Return the epochs completed by the checkpoint MACE left in ``folder``, or ``None`` if it is unknown.

    MACE keeps only the checkpoint of its best epoch, the saved model: the ``best_epoch`` of the run's ``errors``.
    """
    creator = folder.creator
    if creator is None or creator.process_label != 'MaceTrainCalculation' or not creator.is_finished_ok:
        return None
    if 'errors' not in creator.outputs or 'model' not in creator.outputs:
        return None
    return creator.outputs.errors.get('best_epoch')


def _check_resume_from(inputs) -> str | None:
    """Return a message if a member of ``resume_from`` cannot go on from the checkpoint of that folder."""
    resume = inputs.get('resume_from', {})
    both = sorted(set(resume) & set(inputs.get('restart_from', {})))
    if both:
        return f'{both} are in `restart_from` and `resume_from`: a member starts from a model or goes on from a run'
    engines = member_engines(inputs)
    for name, folder in sorted(resume.items()):
        member = int(name.rsplit('_', 1)[1])
        if engines[member] != 'mace':
            return (
                f'`resume_from.{name}`: a {engines[member]} member goes on with its optimizer from a checkpoint model: '
                'give that model in `restart_from`'
            )
        seed = orm.Int(inputs['seed'].value + member)
        message = _check_parent_folder(
            {'parent_folder': folder, 'code': inputs['mace']['train'].get('code'), 'seed': seed}
        )
        if message:
            return f'`resume_from.{name}`: {message}'
        if checkpoint_epoch(folder) is None:
            return f'`resume_from.{name}`: the folder is not that of a MACE training that finished with a saved model'
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
            'distinct_subsets',
            valid_type=orm.Bool,
            required=False,
            help='Deal the training frames out: member k trains on those at positions k, k + N, k + 2N... among them '
            '(N members); all share the validation and test frames (aims-PAX `distinct_model_sets`).',
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
            help='Continual learning: member `member_<k>` starts from this model (e.g. the previous committee), with '
            'a fresh optimizer.',
        )
        spec.input_namespace(
            'resume_from',
            valid_type=orm.RemoteData,
            dynamic=True,
            required=False,
            help='Continual learning (MACE members): member `member_<k>` goes on from the checkpoint of this earlier '
            'run of its own (its `remote_folder`): weights, optimizer and learning-rate schedule, for '
            '`max_num_epochs` more epochs, on the frames given now.',
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
        spec.output_namespace(
            'remote_folders',
            dynamic=True,
            help='The remote folder of the last run of each member: its checkpoints, to give as `resume_from`.',
        )
        spec.output('dataset', valid_type=PESData, help='The dataset the members trained on, with its split tags.')
        spec.exit_code(
            410, 'ERROR_TOO_FEW_MEMBERS', message='Only {trained} of {wanted} members trained: see the report.'
        )
        spec.exit_code(
            411,
            'ERROR_TOO_FEW_TRAINING_FRAMES',
            message='{frames} training frames cannot be dealt out to {members} members (`distinct_subsets`).',
        )

    def setup(self):
        """Tag the frames, choose each member's engine and the throttle."""
        self.ctx.dataset = split_dataset(self.inputs.dataset, self.inputs.seed, metadata={'call_link_label': 'split'})
        self.ctx.members = {}
        if self._distinct():
            frames = self.ctx.dataset.base.attributes.get('split_counts', {}).get('train', 0)
            if frames < self.inputs.num_members.value:
                return self.exit_codes.ERROR_TOO_FEW_TRAINING_FRAMES.format(
                    frames=frames, members=self.inputs.num_members.value
                )
        self.ctx.engines = member_engines(self.inputs)
        first = self.inputs[self.ctx.engines[0]].train
        options = dict(first.get('metadata', {}).get('options', {}))
        self.ctx.max_concurrent = (
            self.inputs.max_concurrent.value
            if 'max_concurrent' in self.inputs
            else default_max_concurrent(first.code, options)
        )
        self.queue_jobs(list(range(self.inputs.num_members.value)))
        self.report(
            f'training {len(self.ctx.engines)} members ({self.ctx.engines}), at most {self.ctx.max_concurrent} at once'
        )
        return None

    def _distinct(self) -> bool:
        """Return whether the members get distinct shares of the training frames."""
        return 'distinct_subsets' in self.inputs and self.inputs.distinct_subsets.value

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
        elif self._distinct():
            dataset = member_training_frames(
                dataset,
                orm.Int(member),
                self.inputs.num_members,
                metadata={'call_link_label': f'share_{member}'},
            )
        inputs.train = AttributeDict({**inputs.train, 'dataset': dataset, 'seed': seed})
        self._set_start(inputs.train, engine, f'member_{member}')
        inputs.metadata = {'call_link_label': f'member_{member}'}
        builder = workchain.get_builder()
        builder.update(inputs)
        return builder

    def _set_start(self, train: AttributeDict, engine: str, name: str) -> None:
        """Set the model (``restart_from``) or the checkpoints (``resume_from``) member ``name`` starts from.

        A resumed MACE member starts from the model of that run too (architecture and E0s) and trains
        ``max_num_epochs`` more epochs: MACE counts epochs from its checkpoint, which it trains again the first.
        """
        epochs = None
        if name in self.inputs.get('resume_from', {}):
            train.parent_folder = self.inputs.resume_from[name]
            train.restart_from = train.parent_folder.creator.outputs.model
            epochs = checkpoint_epoch(train.parent_folder) - 1
        elif name in self.inputs.get('restart_from', {}):
            train.restart_from = self.inputs.restart_from[name]
        if engine != 'mace' or 'restart_from' not in train:
            return
        hyperparameters = train.hyperparameters.get_dict() if 'hyperparameters' in train else {}
        kept = without_architecture(hyperparameters)
        if epochs is not None:
            kept['max_num_epochs'] = epochs + kept.get('max_num_epochs', MaceHyperparameters().max_num_epochs)
        if kept != hyperparameters:  # the starting model fixes the architecture: its keys cannot be set again
            train.hyperparameters = orm.Dict(kept)

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
            for name, output in (('metrics', 'metrics'), ('errors', 'errors'), ('remote_folders', 'remote_folder')):
                if output in child.outputs:
                    self.out(f'{name}.member_{member}', child.outputs[output])
        trained, wanted = len(self.ctx.members), self.inputs.num_members.value
        self.report(f'{trained} of {wanted} members trained')
        if trained < 2:
            return self.exit_codes.ERROR_TOO_FEW_MEMBERS.format(trained=trained, wanted=wanted)
        return None
