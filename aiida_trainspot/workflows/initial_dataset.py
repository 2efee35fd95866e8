"""``InitialDatasetWorkChain``: the initial dataset and committee from MD with a general model (aims-PAX IDG).

A general model (a local foundation-model file, a model of an earlier campaign, or a classical LAMMPS potential)
drives MD from the starting structures; its frames, one every ``stride`` steps, are labelled by the reference method
and added to the dataset; the committee trains a few epochs on the whole dataset, each member continuing from its
model of the previous round (continual learning) on its own share of the training frames. Rounds repeat until the
ensemble validation force MAE is within ``desired_accuracy × accuracy_scale``, or ``max_rounds``, ``max_epochs`` or
``max_dataset_size`` is reached (:mod:`aiida_trainspot.campaign.initial_dataset`). The general model only makes
geometries: its energies and forces are never used.
"""

from __future__ import annotations

import pathlib

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, if_, while_
from aiida_quantumespresso.workflows.protocols.utils import ProtocolMixin

from ..calculations.functions.dataset import merge_datasets, subset_dataset
from ..calculations.functions.initial_dataset import summarize_initial_dataset
from ..campaign.initial_dataset import (
    FAILED_STOPS,
    ensemble_force_mae,
    epochs_this_round,
    frames_to_label,
    full_parameters,
    stop_after_round,
)
from ..data import PESData, PotentialData
from .committee import CommitteeTrainingWorkChain, with_epochs
from .exploration import ExplorationWorkChain
from .initial_dataset_inputs import (
    idg_builder,
    validate_inputs,
    validate_parameters,
)
from .labelling import AbInitioLabellingWorkChain

__all__ = ('InitialDatasetWorkChain',)


class InitialDatasetWorkChain(ProtocolMixin, WorkChain):
    """Build the initial dataset and committee by rounds of MD with a general model, labelling and short training."""

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.input('structures', valid_type=PESData, help='The starting geometries of the MD, one frame each.')
        spec.input(
            'general_model',
            valid_type=(PotentialData, orm.SinglefileData),
            help='The model that drives the MD: a model file (e.g. a local MACE foundation model or a committee '
            'member; `ase` or `lammps` driver), or a classical potential file (`lammps` driver with its `pair_style`).',
        )
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            validator=validate_parameters,
            help='`desired_accuracy` (force MAE, eV/Å), `accuracy_scale`, `max_rounds`, `max_epochs`, '
            '`max_dataset_size`, `epochs_per_round`, `seed`; see `aiida_trainspot.campaign.initial_dataset`.',
        )
        spec.input(
            'dataset',
            valid_type=PESData,
            required=False,
            help='Labelled frames to start from: the sampled frames are added to them.',
        )
        stages = (
            ('sampling', ExplorationWorkChain, ('structures', 'iteration', 'seed', 'md.models')),
            ('labelling', AbInitioLabellingWorkChain, ('dataset',)),
            ('training', CommitteeTrainingWorkChain, ('dataset', 'seed', 'restart_from')),
        )
        for namespace, process, exclude in stages:
            options = {'required': True, 'help': f'Inputs of the {namespace} stage ({process.__name__}).'}
            spec.expose_inputs(process, namespace=namespace, exclude=exclude, namespace_options=options)
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            while_(cls.should_run_round)(
                cls.run_sampling,
                cls.inspect_sampling,
                if_(cls.is_running)(cls.run_labelling, cls.inspect_labelling),
                if_(cls.is_running)(cls.run_training, cls.inspect_training),
            ),
            cls.results,
        )
        spec.output('dataset', valid_type=PESData, required=False, help='Every labelled frame, with its split tag.')
        spec.output_namespace(
            'committee', valid_type=PotentialData, dynamic=True, help='The last committee: `member_<k>`.'
        )
        spec.output('summary', valid_type=orm.Dict, help='Stop reason, and frames, epochs and force MAE per round.')
        spec.exit_code(401, 'ERROR_NO_COMMITTEE', message='The first round failed ({reason}): no committee trained.')
        spec.exit_code(
            410, 'ERROR_STOPPED_BY_FAILURE', message='Stopped early ({reason}); the last results are attached.'
        )

    @classmethod
    def get_protocol_filepath(cls) -> pathlib.Path:
        """Return the path of the protocol file of this work chain."""
        return pathlib.Path(__file__).parent / 'protocols' / 'initial_dataset.yaml'

    @classmethod
    def get_builder_from_protocol(
        cls,
        structures: PESData,
        general_model: PotentialData | orm.SinglefileData,
        codes: dict[str, orm.AbstractCode],
        protocol: str | None = None,
        **kwargs,
    ):
        """Return a builder sampling ``structures`` with ``general_model``, every stage set by ``protocol``.

        :param codes: ``dft`` (pw.x, FHI-aims or the reference runner), ``training`` (``mace_run_train`` or ``mtt``),
            and ``md`` (``trainspot-md``, driver ``ase``) or ``lammps`` (driver ``lammps``).
        :param protocol: ``fast``, ``balanced`` or ``stringent``; also the labelling protocol.
        :param kwargs: ``overrides`` (nested like the inputs; ``training`` also takes ``mace_hyperparameters`` and
            ``metatrain_hyperparameters``), ``pseudo_family`` (pw.x), ``calculator`` (the reference runner).
        """
        return idg_builder(cls, structures, general_model, codes, protocol, **kwargs)

    def setup(self):
        """Read the parameters; start from the given dataset, if any."""
        self.ctx.parameters = full_parameters(self.inputs.parameters.get_dict())
        self.ctx.round = 0
        self.ctx.epochs = []
        self.ctx.stop_reason = None
        self.ctx.records = {}
        self.ctx.dataset = self.inputs.get('dataset')
        self.ctx.committee = {}

    def should_run_round(self):
        """Go on until a stopping criterion is met."""
        return self.ctx.stop_reason is None

    def is_running(self):
        """Return whether the round goes on (no stage of it failed)."""
        return self.ctx.stop_reason is None

    def _record(self, **nodes: orm.Node) -> None:
        """Keep the nodes of this round by their kind (for the summary)."""
        self.ctx.records.setdefault(str(self.ctx.round), {}).update({kind: node.uuid for kind, node in nodes.items()})

    def _seed(self) -> int:
        """Return the seed of the members and split tags; the MD of round ``r`` runs with ``seed + 1000 r``."""
        return self.ctx.parameters['seed']

    def run_sampling(self):
        """Run MD from every structure with the general model; a new seed every round."""
        inputs = AttributeDict(self.exposed_inputs(ExplorationWorkChain, namespace='sampling'))
        inputs.structures = self.inputs.structures
        inputs.iteration = orm.Int(self.ctx.round)
        inputs.seed = orm.Int(self._seed() + 1000 * self.ctx.round)
        if inputs.driver.value == 'lammps':
            inputs.lammps = AttributeDict({**inputs.lammps, 'potential': self.inputs.general_model})
        else:
            models = {'member_0': self.inputs.general_model}
            inputs.md = AttributeDict({**inputs.get('md', {}), 'models': models, 'drive': orm.Str('member_0')})
        inputs.metadata = {'call_link_label': f'sampling_{self.ctx.round}'}
        return ToContext(sampling=self.submit(ExplorationWorkChain, **inputs))

    def inspect_sampling(self):
        """Keep the sampled frames, as many as ``max_dataset_size`` leaves room for (a seeded random choice)."""
        child = self.ctx.sampling
        if not child.is_finished_ok:
            self._stop('sampling_failed', f'{child.process_label}<{child.pk}>: {child.exit_message}')
            return
        frames = child.outputs.frames
        size = len(self.ctx.dataset) if self.ctx.dataset is not None else 0
        wanted = frames_to_label(self.ctx.parameters, size, len(frames))
        if wanted < len(frames):
            rng = np.random.default_rng(self._seed() + self.ctx.round)
            indices = sorted(rng.choice(len(frames), size=wanted, replace=False).tolist())
            frames = subset_dataset(
                frames, orm.List(indices), metadata={'call_link_label': f'within_max_dataset_size_{self.ctx.round}'}
            )
            self.report(f'round {self.ctx.round}: {wanted} of {len(child.outputs.frames)} frames fit in the dataset')
        self.ctx.sampled = frames
        self._record(sampled=frames)

    def run_labelling(self):
        """Label the sampled frames with the reference method."""
        inputs = AttributeDict(self.exposed_inputs(AbInitioLabellingWorkChain, namespace='labelling'))
        inputs.dataset = self.ctx.sampled
        inputs.metadata = {'call_link_label': f'labelling_{self.ctx.round}'}
        return ToContext(labelling=self.submit(AbInitioLabellingWorkChain, **inputs))

    def inspect_labelling(self):
        """Add the labelled frames to the dataset; frames whose labelling failed are left out."""
        child = self.ctx.labelling
        if not child.is_finished_ok or not len(child.outputs.labelled_dataset):
            self._stop('labelling_failed', f'{child.process_label}<{child.pk}>: {child.exit_message or "no frame"}')
            return
        labelled = child.outputs.labelled_dataset
        self._record(labelled=labelled)
        if self.ctx.dataset is None:
            self.ctx.dataset = labelled
        else:
            self.ctx.dataset = merge_datasets(
                dataset=self.ctx.dataset, new=labelled, metadata={'call_link_label': f'merge_{self.ctx.round}'}
            )

    def run_training(self):
        """Train the committee a few epochs on the whole dataset, each member from its previous model."""
        epochs = epochs_this_round(self.ctx.parameters, sum(self.ctx.epochs))
        inputs = AttributeDict(self.exposed_inputs(CommitteeTrainingWorkChain, namespace='training'))
        inputs.dataset = self.ctx.dataset
        inputs.seed = orm.Int(self._seed())
        if 'subset_fraction' not in inputs and 'distinct_subsets' not in inputs:
            inputs.distinct_subsets = orm.Bool(True)
        if self.ctx.committee:
            inputs.restart_from = self.ctx.committee
        with_epochs(inputs, epochs)
        inputs.metadata = {'call_link_label': f'training_{self.ctx.round}'}
        self.ctx.round_epochs = epochs
        self.report(f'round {self.ctx.round}: training {epochs} epochs on {len(self.ctx.dataset)} labelled frames')
        return ToContext(training=self.submit(CommitteeTrainingWorkChain, **inputs))

    def inspect_training(self):
        """Take the committee and its tagged dataset; measure the ensemble; decide whether to stop."""
        child = self.ctx.training
        if not child.is_finished_ok:
            self._stop('training_failed', f'{child.process_label}<{child.pk}>: {child.exit_message}')
            return
        self.ctx.committee = dict(child.outputs.models)
        self.ctx.dataset = child.outputs.dataset
        self.ctx.epochs.append(self.ctx.round_epochs)
        errors = {name.removeprefix('member_'): node for name, node in child.outputs.errors.items()}
        self._record(dataset=self.ctx.dataset, **{f'errors_{member}': node for member, node in errors.items()})
        mae = ensemble_force_mae([node.get_dict() for node in errors.values()])
        text = 'none reported' if mae is None else f'{mae:.4g} eV/Å'
        self.report(f'round {self.ctx.round}: ensemble validation force MAE {text}')
        reason = stop_after_round(
            self.ctx.parameters, self.ctx.round + 1, sum(self.ctx.epochs), len(self.ctx.dataset), mae
        )
        if reason:
            self._stop(reason)
        self.ctx.round += 1

    def _stop(self, reason: str, detail: str | None = None) -> None:
        """Stop the rounds for ``reason`` and say so."""
        self.ctx.stop_reason = reason
        self.report(f'stopping in round {self.ctx.round}: {reason}' + (f' ({detail})' if detail else ''))

    def results(self):
        """Attach the committee, the dataset and the summary; fail if a stage failed."""
        for name, model in self.ctx.committee.items():
            self.out(f'committee.{name}', model)
        if self.ctx.dataset is not None:
            self.out('dataset', self.ctx.dataset)
        nodes = {}
        for index, record in self.ctx.records.items():
            for kind, uuid in record.items():
                name, _, member = kind.partition('_')  # `errors_<member>` or a plain kind
                nodes['_'.join(filter(None, (name, index, member)))] = orm.load_node(uuid)
        summary = summarize_initial_dataset(
            orm.Str(self.ctx.stop_reason),
            self.inputs.parameters,
            orm.List(self.ctx.epochs),
            **nodes,
            metadata={'call_link_label': 'summary'},
        )
        self.out('summary', summary)
        if self.ctx.stop_reason in FAILED_STOPS:
            if not self.ctx.committee:
                return self.exit_codes.ERROR_NO_COMMITTEE.format(reason=self.ctx.stop_reason)
            return self.exit_codes.ERROR_STOPPED_BY_FAILURE.format(reason=self.ctx.stop_reason)
        return None
