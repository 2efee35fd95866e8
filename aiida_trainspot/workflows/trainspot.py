"""``TrainsPotWorkChain``: the active-learning campaign, from a few structures to a trained committee.

Augmentation (optional) → labelling → loop { committee training (continual learning from the previous committee) →
exploration with the committee ∥ evaluation of the committee on the labelled frames → accuracy and calibration →
stop? → selection of the frames above the thresholds → labelling }. The loop ends on the first stopping criterion of
:mod:`aiida_trainspot.campaign.stopping`; its last committee was trained on the whole dataset and is the result. Every
stage is a sub-work-chain or a calcfunction, so the provenance graph holds every structure, label, model and
decision. A campaign can start from a labelled ``dataset`` (no augmentation, no first labelling) and from a
``committee`` (no first training).
"""

from __future__ import annotations

import pathlib

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, if_, while_
from aiida_quantumespresso.workflows.protocols.utils import ProtocolMixin

from ..calculations.evaluate import EvaluationCalculation
from ..calculations.functions.campaign import summarize_campaign
from ..calculations.functions.dataset import merge_datasets, split_dataset, subset_dataset
from ..calculations.functions.uncertainty import calibrate_committee, committee_accuracy, select_frames
from ..campaign.settings import full_settings, parallel_loop_settings
from ..campaign.stopping import selection_cap, stop_after_evaluation
from ..data import PESData, PotentialData
from .augmentation import DatasetAugmentationWorkChain
from .campaign_inputs import campaign_builder, parallel_md_parameters, validate_active_learning, validate_inputs
from .committee import CommitteeTrainingWorkChain
from .exploration import ExplorationWorkChain
from .labelling import AbInitioLabellingWorkChain
from .pax import ParallelActiveLearningWorkChain

FAILED_STOPS = ('training_failed', 'labelling_failed', 'exploration_failed', 'parallel_failed')
"""Stop reasons that end the campaign with an exit code (after attaching what was computed)."""


class TrainsPotWorkChain(ProtocolMixin, WorkChain):
    """Train a committee of interatomic potentials by automated active learning, with full provenance."""

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.input('structures', valid_type=PESData, help='The starting structures: augmented, labelled, explored.')
        spec.input(
            'dataset',
            valid_type=PESData,
            required=False,
            help='Labelled frames to start from: no augmentation and no first labelling.',
        )
        spec.input_namespace(
            'committee',
            valid_type=PotentialData,
            dynamic=True,
            required=False,
            help='A trained committee (`member_0`, `member_1`...) to start from: no first training.',
        )
        spec.input(
            'active_learning',
            valid_type=orm.Dict,
            default=lambda: orm.Dict({}),
            validator=validate_active_learning,
            help='Loop settings: `max_iterations`, `label_budget`, `max_selected`, `selection_method`, '
            '`tolerances`, `thresholds`, `targets`, `target_split`, `seed`; see `aiida_trainspot.campaign.settings`.',
        )
        cls.expose_stages(spec)
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            if_(cls.should_run_augmentation)(cls.run_augmentation, cls.inspect_augmentation),
            if_(cls.should_run_initial_labelling)(cls.run_initial_labelling, cls.inspect_initial_labelling),
            while_(cls.should_iterate)(
                if_(cls.should_run_training)(cls.run_training, cls.inspect_training),
                if_(cls.should_run_parallel)(cls.run_parallel, cls.inspect_parallel),
                if_(cls.has_committee)(
                    cls.run_evaluation,
                    cls.inspect_evaluation,
                    if_(cls.should_evaluate_explored)(cls.run_explored_evaluation, cls.inspect_explored_evaluation),
                    if_(cls.should_select)(cls.run_selection),
                    if_(cls.has_selection)(cls.run_labelling, cls.inspect_labelling),
                ),
            ),
            cls.results,
        )
        cls.define_outputs(spec)

    @staticmethod
    def expose_stages(spec) -> None:
        """Expose the inputs of every stage in its own namespace."""
        stages = (
            ('augmentation', DatasetAugmentationWorkChain, ('structures',), False),
            ('labelling', AbInitioLabellingWorkChain, ('dataset',), True),
            ('training', CommitteeTrainingWorkChain, ('dataset', 'seed', 'restart_from'), True),
            ('exploration', ExplorationWorkChain, ('structures', 'iteration', 'seed', 'md.models'), True),
            ('evaluation', EvaluationCalculation, ('dataset', 'models'), True),
        )
        for namespace, process, exclude, required in stages:
            options = {'required': required, 'help': f'Inputs of the {namespace} stage ({process.__name__}).'}
            if not required:
                options['populate_defaults'] = False
            spec.expose_inputs(process, namespace=namespace, exclude=exclude, namespace_options=options)

    @staticmethod
    def define_outputs(spec) -> None:
        """Define the outputs and exit codes."""
        spec.output_namespace('committee', valid_type=PotentialData, dynamic=True, help='The final committee.')
        spec.output('dataset', valid_type=PESData, help='Every labelled frame, with its split tag.')
        spec.output(
            'evaluated_dataset',
            valid_type=PESData,
            help="The labelled frames with the final committee's predictions (parity plots, test errors).",
        )
        spec.output_namespace('accuracy', valid_type=orm.Dict, dynamic=True, help='Committee RMSE per iteration.')
        spec.output_namespace('calibration', valid_type=orm.Dict, dynamic=True, help='Calibration per iteration.')
        spec.output('summary', valid_type=orm.Dict, help='Stop reason and the numbers of every iteration.')
        spec.exit_code(
            401,
            'ERROR_BUDGET_BELOW_INITIAL_DATASET',
            message='{frames} frames to label exceed `label_budget` {budget}.',
        )
        spec.exit_code(402, 'ERROR_AUGMENTATION_FAILED', message='The augmentation failed: {message}')
        spec.exit_code(403, 'ERROR_INITIAL_LABELLING_FAILED', message='The first labelling failed: {message}')
        spec.exit_code(404, 'ERROR_INITIAL_TRAINING_FAILED', message='The first committee did not train: {message}')
        spec.exit_code(405, 'ERROR_EVALUATION_FAILED', message='The committee evaluation failed: {message}')
        spec.exit_code(
            410,
            'ERROR_STOPPED_BY_FAILURE',
            message='The campaign stopped early ({reason}); its last results are attached.',
        )

    @classmethod
    def get_protocol_filepath(cls) -> pathlib.Path:
        """Return the path of the protocol file of this work chain."""
        return pathlib.Path(__file__).parent / 'protocols' / 'trainspot.yaml'

    @classmethod
    def get_builder_from_protocol(cls, structures: PESData, codes: dict, protocol: str | None = None, **kwargs):
        """Return a builder of a campaign on ``structures`` with ``codes`` and ``protocol`` for every stage.

        :param codes: ``dft`` (pw.x, FHI-aims or the reference runner), ``training`` (``mace_run_train`` or ``mtt``),
            ``md`` (``trainspot-md``) and ``evaluate`` (``trainspot-evaluate``).
        :param protocol: ``fast``, ``balanced`` or ``stringent``: this work chain's and every stage's.
        :param kwargs: ``overrides`` (nested like the inputs), ``pseudo_family``, ``calculator``, ``augment``.
        """
        return campaign_builder(cls, structures, codes, protocol, **kwargs)

    def setup(self):
        """Read the settings; take the given dataset and committee."""
        self.ctx.settings = full_settings(self.inputs.active_learning.get_dict())
        self.ctx.iteration = 0
        self.ctx.stop_reason = None
        self.ctx.records = {}
        self.ctx.dataset = self.inputs.get('dataset')
        self.ctx.committee = dict(self.inputs.get('committee', {}))
        self.ctx.unlabelled = self.inputs.structures

    def should_run_augmentation(self):
        """Augment when asked to and no labelled dataset is given."""
        return 'augmentation' in self.inputs and self.ctx.dataset is None

    def run_augmentation(self):
        """Augment the starting structures."""
        inputs = AttributeDict(self.exposed_inputs(DatasetAugmentationWorkChain, namespace='augmentation'))
        inputs.structures = self.inputs.structures
        inputs.metadata = {'call_link_label': 'augmentation'}
        return ToContext(augmentation=self.submit(DatasetAugmentationWorkChain, **inputs))

    def inspect_augmentation(self):
        """Keep the augmented frames to label."""
        child = self.ctx.augmentation
        if not child.is_finished_ok:
            return self.exit_codes.ERROR_AUGMENTATION_FAILED.format(message=child.exit_message)
        self.ctx.unlabelled = child.outputs.dataset
        return None

    def should_run_initial_labelling(self):
        """Label the structures (or their augmentation) unless a labelled dataset is given."""
        return self.ctx.dataset is None

    def run_initial_labelling(self):
        """Label the starting frames, within the label budget."""
        budget = self.ctx.settings['label_budget']
        if budget is not None and len(self.ctx.unlabelled) > budget:
            return self.exit_codes.ERROR_BUDGET_BELOW_INITIAL_DATASET.format(
                frames=len(self.ctx.unlabelled), budget=budget
            )
        return ToContext(labelling=self._submit_labelling(self.ctx.unlabelled, 'initial_labelling'))

    def inspect_initial_labelling(self):
        """Keep the labelled frames: the first dataset."""
        child = self.ctx.labelling
        if not child.is_finished_ok:
            return self.exit_codes.ERROR_INITIAL_LABELLING_FAILED.format(message=child.exit_message)
        self.ctx.dataset = child.outputs.labelled_dataset
        return None

    def should_iterate(self):
        """Go on until a stopping criterion is met."""
        return self.ctx.stop_reason is None

    def should_run_training(self):
        """Train, except in the first iteration when a committee is given."""
        return not (self.ctx.iteration == 0 and self.ctx.committee)

    def run_training(self):
        """Train the committee on the whole dataset, each member from its previous model (continual learning)."""
        inputs = AttributeDict(self.exposed_inputs(CommitteeTrainingWorkChain, namespace='training'))
        inputs.dataset = self.ctx.dataset
        inputs.seed = orm.Int(self.ctx.settings['seed'])
        if self.ctx.committee:
            inputs.restart_from = self.ctx.committee
        inputs.metadata = {'call_link_label': f'training_{self.ctx.iteration}'}
        self.report(f'iteration {self.ctx.iteration}: training on {len(self.ctx.dataset)} labelled frames')
        return ToContext(training=self.submit(CommitteeTrainingWorkChain, **inputs))

    def inspect_training(self):
        """Take the new committee and the split-tagged dataset; without a committee the campaign cannot go on."""
        child = self.ctx.training
        if not child.is_finished_ok:
            if not self.ctx.committee:
                return self.exit_codes.ERROR_INITIAL_TRAINING_FAILED.format(message=child.exit_message)
            self._stop('training_failed')
            return None
        self.ctx.committee = dict(child.outputs.models)
        self.ctx.dataset = child.outputs.dataset
        return None

    def should_run_parallel(self):
        """Run the parallel loop once, from the first committee, in the ``parallel`` mode."""
        return self.ctx.settings['mode'] == 'parallel' and 'parallel' not in self.ctx and self.ctx.stop_reason is None

    def run_parallel(self):
        """Run the aims-PAX loop from the committee and dataset; its last committee is then evaluated."""
        exploration = AttributeDict(self.exposed_inputs(ExplorationWorkChain, namespace='exploration'))
        md = AttributeDict(exploration.md)
        md.parameters = orm.Dict(parallel_md_parameters(exploration))
        settings = parallel_loop_settings(self.ctx.settings, len(self.ctx.dataset))
        inputs = AttributeDict(
            {
                'structures': self.inputs.structures,
                'dataset': self.ctx.dataset,
                'committee': self.ctx.committee,
                'active_learning': orm.Dict(settings),
                'md': md,
                'labelling': self.exposed_inputs(AbInitioLabellingWorkChain, namespace='labelling'),
                'training': self.exposed_inputs(CommitteeTrainingWorkChain, namespace='training'),
                'metadata': {'call_link_label': 'parallel'},
            }
        )
        inputs.labelling.pop('max_concurrent', None)
        self.report(f'the parallel loop starts from {len(self.ctx.dataset)} labelled frames')
        return ToContext(parallel=self.submit(ParallelActiveLearningWorkChain, **inputs))

    def inspect_parallel(self):
        """Take the loop's committee and dataset (also after a failure: what it labelled is kept)."""
        child = self.ctx.parallel
        if 'committee' in child.outputs:
            self.ctx.committee = dict(child.outputs.committee)
        if 'dataset' in child.outputs:
            self.ctx.dataset = child.outputs.dataset
        reason = child.outputs.summary['stop_reason'] if 'summary' in child.outputs else None
        self.ctx.parallel_stop = reason if child.is_finished_ok and reason else 'parallel_failed'
        self.report(f'the parallel loop ended: {self.ctx.parallel_stop}; evaluating its committee')

    def has_committee(self):
        """Return whether there is a committee to evaluate (the training may have failed)."""
        return self.ctx.stop_reason is None

    def run_evaluation(self):
        """Evaluate the committee on the labelled frames; meanwhile explore with it, unless this is the last one."""
        dataset = self.ctx.dataset
        if not dataset.base.attributes.get('split_counts', {}).get('train'):
            dataset = split_dataset(dataset, orm.Int(self.ctx.settings['seed']), metadata={'call_link_label': 'split'})
            self.ctx.dataset = dataset
        iteration = self.ctx.iteration
        inputs = AttributeDict(self.exposed_inputs(EvaluationCalculation, namespace='evaluation'))
        inputs.update(dataset=dataset, models=self.ctx.committee)
        inputs.metadata = {**inputs.get('metadata', {}), 'call_link_label': f'evaluation_{iteration}'}
        children = {'evaluation': self.submit(EvaluationCalculation, **inputs)}
        self.ctx.explored = None
        self.ctx.exploring = self._may_explore()
        if self.ctx.exploring:
            children['exploration'] = self.submit(ExplorationWorkChain, **self._exploration_inputs())
        return ToContext(**children)

    def _may_explore(self) -> bool:
        """Return whether a stop other than an accuracy target is already certain after this evaluation."""
        settings = self.ctx.settings
        return settings['mode'] == 'batch' and (
            stop_after_evaluation(
                self.ctx.iteration,
                settings['max_iterations'],
                settings['label_budget'],
                len(self.ctx.dataset),
                None,
                {},
            )
            is None
        )

    def _exploration_inputs(self) -> AttributeDict:
        """Return the inputs of the exploration with the current committee."""
        inputs = AttributeDict(self.exposed_inputs(ExplorationWorkChain, namespace='exploration'))
        inputs.structures = self.inputs.structures
        inputs.iteration = orm.Int(self.ctx.iteration)
        inputs.seed = orm.Int(self.ctx.settings['seed'] + 1000 * self.ctx.iteration)
        inputs.md = AttributeDict({**inputs.get('md', {}), 'models': self.ctx.committee})
        if inputs.driver.value == 'lammps' and 'potential' not in inputs.get('lammps', {}):
            inputs.lammps = AttributeDict({**inputs.lammps, 'potential': self.ctx.committee['member_0']})
        inputs.metadata = {'call_link_label': f'exploration_{self.ctx.iteration}'}
        return inputs

    def inspect_evaluation(self):
        """Compute the committee's accuracy and calibration; decide whether the campaign stops here."""
        child = self.ctx.evaluation
        if not child.is_finished_ok:
            return self.exit_codes.ERROR_EVALUATION_FAILED.format(message=child.exit_message)
        evaluated = child.outputs.evaluated_dataset
        iteration, settings = self.ctx.iteration, self.ctx.settings
        accuracy = committee_accuracy(evaluated, metadata={'call_link_label': f'accuracy_{iteration}'})
        calibration = calibrate_committee(
            self._calibration_frames(evaluated),
            orm.Dict(settings['tolerances'] or {}),
            metadata={'call_link_label': f'calibration_{iteration}'},
        )
        self.ctx.evaluated = evaluated
        self.ctx.records[str(iteration)] = {
            'dataset': self.ctx.dataset.uuid, 'accuracy': accuracy.uuid, 'calibration': calibration.uuid
        }  # fmt: skip
        errors = accuracy[settings['target_split']]
        self.report(f'iteration {iteration}: committee RMSE on {settings["target_split"]}: {errors}')
        reason = stop_after_evaluation(
            iteration,
            settings['max_iterations'],
            settings['label_budget'],
            len(self.ctx.dataset),
            settings['targets'],
            errors,
        )
        if self.ctx.get('parallel_stop'):
            self._stop(self.ctx.parallel_stop)
        elif reason:
            self._stop(reason)
        elif self.ctx.exploring and not self.ctx.exploration.is_finished_ok:
            self._stop('exploration_failed')
        elif self.ctx.exploring:
            self.ctx.explored = self.ctx.exploration.outputs.frames
        return None

    def should_evaluate_explored(self):
        """Evaluate the explored frames unless the MD already stored the committee's disagreement (``ase`` driver)."""
        if self.ctx.stop_reason is not None or self.ctx.explored is None:
            return False
        return 'force_disagreement' not in self.ctx.explored.get_frame(0).frame_arrays

    def run_explored_evaluation(self):
        """Evaluate the committee on the explored frames (driven by one potential, e.g. in LAMMPS)."""
        inputs = AttributeDict(self.exposed_inputs(EvaluationCalculation, namespace='evaluation'))
        inputs.update(dataset=self.ctx.explored, models=self.ctx.committee)
        inputs.metadata = {**inputs.get('metadata', {}), 'call_link_label': f'explored_evaluation_{self.ctx.iteration}'}
        return ToContext(explored_evaluation=self.submit(EvaluationCalculation, **inputs))

    def inspect_explored_evaluation(self):
        """Select from the evaluated frames."""
        child = self.ctx.explored_evaluation
        if not child.is_finished_ok:
            return self.exit_codes.ERROR_EVALUATION_FAILED.format(message=child.exit_message)
        self.ctx.explored = child.outputs.evaluated_dataset
        return None

    def _calibration_frames(self, evaluated: PESData) -> PESData:
        """Return the held-out (valid and test) frames of ``evaluated``, or all of them if fewer than two."""
        counts = evaluated.base.attributes.get('split_counts', {})
        if counts.get('valid', 0) + counts.get('test', 0) < 2:
            return evaluated
        query = orm.Dict({'split': ['valid', 'test']})
        return subset_dataset(evaluated, query=query, metadata={'call_link_label': f'held_out_{self.ctx.iteration}'})

    def should_select(self):
        """Select when the campaign goes on and the exploration gave frames."""
        return self.ctx.stop_reason is None and self.ctx.explored is not None

    def run_selection(self):
        """Select the explored frames above the thresholds (calibrated, or fixed), within the budget."""
        settings, iteration = self.ctx.settings, self.ctx.iteration
        record = self.ctx.records[str(iteration)]
        calibration = orm.load_node(record['calibration'])
        thresholds = self._thresholds(calibration)
        cap = selection_cap(settings['max_selected'], settings['label_budget'], len(self.ctx.dataset))
        selected = select_frames(
            self.ctx.explored,
            thresholds,
            orm.Int(cap),
            orm.Int(settings['seed'] + iteration),
            orm.Str(settings['selection_method']),
            metadata={'call_link_label': f'selection_{iteration}'},
        )
        record.update(explored=self.ctx.explored.uuid, selected=selected.uuid, thresholds=thresholds.uuid)
        self.report(f'iteration {iteration}: {len(selected)} of {len(self.ctx.explored)} explored frames selected')
        if len(selected) == 0:
            self._stop('no_uncertain_frames')

    def _thresholds(self, calibration: orm.Dict) -> orm.Dict:
        """Return the thresholds to select with: the fixed ones, the calibrated ones, or the tolerances if unfitted."""
        settings = self.ctx.settings
        if settings['thresholds'] is not None:
            return orm.Dict(settings['thresholds'])
        if any(value is not None for value in calibration['thresholds'].values()):
            return calibration
        self.report('the calibration could not fit a slope: the tolerances serve as disagreement thresholds')
        return orm.Dict(settings['tolerances'])

    def has_selection(self):
        """Label when frames were selected."""
        return self.ctx.stop_reason is None and self.ctx.explored is not None

    def run_labelling(self):
        """Label the selected frames."""
        selected = orm.load_node(self.ctx.records[str(self.ctx.iteration)]['selected'])
        return ToContext(labelling=self._submit_labelling(selected, f'labelling_{self.ctx.iteration}'))

    def _submit_labelling(self, dataset: PESData, label: str):
        """Submit the labelling of ``dataset`` with the labelling stage's inputs."""
        inputs = AttributeDict(self.exposed_inputs(AbInitioLabellingWorkChain, namespace='labelling'))
        inputs.dataset = dataset
        inputs.metadata = {'call_link_label': label}
        return self.submit(AbInitioLabellingWorkChain, **inputs)

    def inspect_labelling(self):
        """Add the new labels to the dataset and start the next iteration."""
        child = self.ctx.labelling
        if not child.is_finished_ok:
            self._stop('labelling_failed')
            return
        labelled = child.outputs.labelled_dataset
        self.ctx.records[str(self.ctx.iteration)]['labelled'] = labelled.uuid
        self.ctx.dataset = merge_datasets(
            dataset=self.ctx.dataset, new=labelled, metadata={'call_link_label': f'merge_{self.ctx.iteration}'}
        )
        self.ctx.iteration += 1

    def _stop(self, reason: str) -> None:
        """Stop the loop for ``reason`` and say so."""
        self.ctx.stop_reason = reason
        self.report(f'the campaign stops after iteration {self.ctx.iteration}: {reason}')

    def results(self):
        """Attach the committee, the dataset, the accuracy and calibration of every iteration, and the summary."""
        for name, model in self.ctx.committee.items():
            self.out(f'committee.{name}', model)
        self.out('dataset', self.ctx.dataset)
        if 'evaluated' in self.ctx:
            self.out('evaluated_dataset', self.ctx.evaluated)
        nodes = {}
        for iteration, record in self.ctx.records.items():
            for kind, uuid in record.items():
                nodes[f'{kind}_{iteration}'] = orm.load_node(uuid)
                if kind in ('accuracy', 'calibration'):
                    self.out(f'{kind}.iteration_{iteration}', nodes[f'{kind}_{iteration}'])
        summary = summarize_campaign(orm.Str(self.ctx.stop_reason), **nodes, metadata={'call_link_label': 'summary'})
        self.out('summary', summary)
        if self.ctx.stop_reason in FAILED_STOPS:
            return self.exit_codes.ERROR_STOPPED_BY_FAILURE.format(reason=self.ctx.stop_reason)
        return None
