"""``ParallelActiveLearningWorkChain``: aims-PAX's parallel active exploration, as AiiDA processes.

``num_trajectories`` trajectories advance as MD *segments* (one :class:`~aiida_trainspot.calculations.md.MdCalculation`
each) driven by the newest committee. A segment stops at the first check whose force disagreement (seed 000 Eq. 1)
crosses the shared moving-average threshold (Eq. 2, fed with every check of every segment, and by the segment's own
checks as it runs); that frame goes to DFT (one :class:`~aiida_trainspot.workflows.labelling.AbInitioLabellingWorkChain`
each, at most ``max_dft_workers`` at once) while the other trajectories keep running. A labelled frame goes to
validation or training (``valid_ratio``) and the trajectory goes on from it, its new checkpoint; a training frame
starts a training chunk (the committee continues from its weights for ``training_epochs`` epochs, one chunk at a time;
frames that arrive meanwhile start the next). A failed DFT sends its trajectory back to its checkpoint. The work chain
wakes up as each child ends (not when all have), so MD, DFT and training overlap. When a stopping criterion is met, the
running children are awaited (no label is lost) and the best member is trained to convergence. See
:mod:`aiida_trainspot.pax` for the decisions, all pure functions.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, if_, while_

from ..calculations.functions.dataset import split_dataset, subset_dataset
from ..calculations.functions.pax import add_labelled, summarize_pax
from ..calculations.md import MdCalculation
from ..campaign.initial_dataset import ensemble_force_mae
from ..data import PESData, PotentialData
from ..pax import policy
from ..pax.optimizer import RESUME, member_optimizer_states, saved_valid_loss
from ..pax.settings import full_settings
from .committee import ENGINES, CommitteeTrainingWorkChain, with_epochs, without_architecture
from .labelling import AbInitioLabellingWorkChain
from .pax_inputs import validate_active_learning, validate_inputs
from .throttle import ThrottleMixin, default_max_concurrent, wake_on_first

MAX_MD_FAILURES = 3
"""Segments of one trajectory that may fail in a row (not the stability guard) before it is abandoned."""


class ParallelActiveLearningWorkChain(ThrottleMixin, WorkChain):
    """Explore with several trajectories at once; label and train as soon as a frame is uncertain (aims-PAX)."""

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.input(
            'structures', valid_type=PESData, help='Starting geometries; trajectory k starts from frame k mod N.'
        )
        spec.input('dataset', valid_type=PESData, help='The labelled frames the committee was trained on.')
        spec.input_namespace(
            'committee', valid_type=PotentialData, dynamic=True, help='The committee to start from: `member_<k>`.'
        )
        spec.input(
            'active_learning',
            valid_type=orm.Dict,
            default=lambda: orm.Dict({'max_md_steps': 1000}),
            validator=validate_active_learning,
            help='Settings of the parallel loop (`num_trajectories`, `segment_steps`, `check_every`, `c_x`, '
            '`max_dft_workers`, stopping criteria...); see `aiida_trainspot.pax.settings`.',
        )
        spec.expose_inputs(
            MdCalculation,
            namespace='md',
            exclude=('structures', 'models'),
            namespace_options={'help': 'Inputs of every MD segment; `parameters` without the fields segments set.'},
        )
        spec.expose_inputs(
            AbInitioLabellingWorkChain,
            namespace='labelling',
            exclude=('dataset', 'max_concurrent'),
            namespace_options={'help': 'Inputs of the labelling of every uncertain frame.'},
        )
        spec.expose_inputs(
            CommitteeTrainingWorkChain,
            namespace='training',
            exclude=('dataset', 'seed', 'restart_from'),
            namespace_options={'help': 'Inputs of every training chunk (and of the final training of the best one).'},
        )
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            while_(cls.should_continue)(cls.run_tasks, cls.inspect_tasks),
            if_(cls.should_converge)(cls.run_convergence, cls.inspect_convergence),
            cls.results,
        )
        spec.output_namespace('committee', valid_type=PotentialData, dynamic=True, help='The newest committee.')
        spec.output('model', valid_type=PotentialData, required=False, help='The best member, trained to convergence.')
        spec.output('dataset', valid_type=PESData, help='Every labelled frame, with its train/valid/test tag.')
        spec.output('summary', valid_type=orm.Dict, help='Stop reason, counts, threshold and accuracy history.')
        spec.exit_code(
            410,
            'ERROR_TRAINING_FAILED',
            message='Training chunks failed {count} times in a row; what was labelled is attached.',
        )
        spec.exit_code(420, 'ERROR_CONVERGENCE_FAILED', message='The final training failed: {message}')

    def setup(self):
        """Read the settings, tag the dataset, place the trajectories on their starting structures."""
        settings = full_settings(self.inputs.active_learning.get_dict())
        self.ctx.settings = settings
        self.ctx.dataset = self.inputs.dataset
        if self.inputs.dataset.base.attributes.get('split_counts', {}).get('unassigned', 0):
            self.ctx.dataset = split_dataset(
                self.inputs.dataset, orm.Int(settings['seed']), metadata={'call_link_label': 'split'}
            )
        self.ctx.committee = dict(self.inputs.committee)
        self.ctx.version = 0
        self.ctx.threshold = policy.new_threshold_state(settings)
        self.ctx.running, self.ctx.dft_queue = [], []
        self.ctx.train_requested, self.ctx.training_failures, self.ctx.stop_reason = False, 0, None
        self.ctx.errors, self.ctx.valid_mae, self.ctx.optimizer_state, self.ctx.resume = {}, None, {}, {}
        self.ctx.record = {'labelled': 0, 'failed_labels': 0, 'crossings': 0, 'segments': 0, 'unstable': 0,
                           'routed': {'train': 0, 'valid': 0}, 'thresholds': [], 'trainings': []}  # fmt: skip
        self.ctx.trajectories = [self._new_trajectory(index) for index in range(settings['num_trajectories'])]
        labelling = self.inputs.labelling
        options = labelling['options'].get_dict() if 'options' in labelling else {}
        self.ctx.max_dft = settings['max_dft_workers'] or default_max_concurrent(labelling.code, options)
        self.ctx.max_md = settings['max_md_workers'] or settings['num_trajectories']
        self.report(
            f'{settings["num_trajectories"]} trajectories, at most {self.ctx.max_md} MD segments and '
            f'{self.ctx.max_dft} DFT jobs at once'
        )

    def _new_trajectory(self, index: int) -> dict:
        """Return the state of trajectory ``index``: it starts (and falls back) on its starting structure."""
        position = index % len(self.inputs.structures)
        start = subset_dataset(
            self.inputs.structures, orm.List([position]), metadata={'call_link_label': f'start_{index}'}
        )
        return {'status': 'idle', 'start': start.uuid, 'checkpoint': start.uuid, 'frame': None,
                'steps': 0, 'segments': 0, 'md_failures': 0}  # fmt: skip

    def should_continue(self):
        """Go on until a stopping criterion holds, then until every running child has ended."""
        return self.ctx.stop_reason is None or bool(self.ctx.running)

    def run_tasks(self):
        """Start what the free slots allow: MD segments, DFT of queued frames, a training chunk; wait for the first."""
        if self.ctx.stop_reason is None:
            self._start_labelling()
            self._start_training()
            self._start_segments()
        return wake_on_first([pk for _, pk in self.ctx.running])

    def _running(self, kind: str) -> int:
        """Return how many children of ``kind`` run."""
        return sum(job['kind'] == kind for job, _ in self.ctx.running)

    def _start(self, job: dict, process, inputs: dict) -> None:
        """Submit ``process`` for ``job`` and remember it among the running children."""
        self.ctx.running.append((job, self.submit(process, **inputs).pk))

    def _open_labels(self, pending: int) -> float:
        """Return how many more frames the label budget lets go to DFT, beyond the labelled and ``pending`` ones."""
        return policy.open_labels(self.ctx.settings, self.ctx.record['labelled'], pending)

    def _start_segments(self) -> None:
        """Start a segment for every idle trajectory while MD slots are free and the label budget needs frames."""
        for index, trajectory in enumerate(self.ctx.trajectories):
            if trajectory['status'] != 'idle' or self._running('md') >= self.ctx.max_md:
                continue
            if self._open_labels(self._running('dft') + len(self.ctx.dft_queue) + self._running('md')) <= 0:
                return
            settings, segment = self.ctx.settings, trajectory['segments']
            inputs = AttributeDict(self.exposed_inputs(MdCalculation, namespace='md'))
            parameters = inputs['parameters'].get_dict() if 'parameters' in inputs else {}
            seed = policy.segment_seed(settings['seed'], index, segment)
            size = self._counts()['train']
            spec = policy.segment_spec(parameters, settings, self.ctx.threshold, size, seed, self.ctx.version)
            inputs.update(
                structures=orm.load_node(trajectory['start']),
                models=self.ctx.committee,
                parameters=orm.Dict(spec),
                metadata={**inputs.get('metadata', {}), 'call_link_label': f'md_{index}_{segment}'},
            )
            trajectory['status'] = 'md'
            self._start({'kind': 'md', 'trajectory': index}, MdCalculation, inputs)

    def _start_labelling(self) -> None:
        """Start the DFT of queued uncertain frames while DFT slots are free and the label budget allows."""
        while (
            self.ctx.dft_queue and self._running('dft') < self.ctx.max_dft and self._open_labels(self._running('dft'))
        ):
            index = self.ctx.dft_queue.pop(0)
            trajectory = self.ctx.trajectories[index]
            inputs = AttributeDict(self.exposed_inputs(AbInitioLabellingWorkChain, namespace='labelling'))
            inputs.update(
                dataset=orm.load_node(trajectory['frame']),
                max_concurrent=orm.Int(1),
                metadata={'call_link_label': f'labelling_{index}_{trajectory["segments"]}'},
            )
            trajectory['status'] = 'dft'
            self._start({'kind': 'dft', 'trajectory': index}, AbInitioLabellingWorkChain, inputs)

    def _start_training(self) -> None:
        """Start a training chunk from the newest committee if training frames arrived and none runs."""
        if not self.ctx.train_requested or self._running('training'):
            return
        inputs = AttributeDict(self.exposed_inputs(CommitteeTrainingWorkChain, namespace='training'))
        with_epochs(inputs, self.ctx.settings['training_epochs'])
        resume = {name: folder for name, folder in self.ctx.resume.items() if name in self.ctx.committee}
        inputs.update(
            dataset=self.ctx.dataset,
            seed=orm.Int(self.ctx.settings['seed']),
            num_members=orm.Int(len(self.ctx.committee)),
            restart_from={name: model for name, model in self.ctx.committee.items() if name not in resume},
            resume_from=resume,
            metadata={'call_link_label': f'training_{self.ctx.version + 1}'},
        )
        self.ctx.train_requested = False
        self._start({'kind': 'training', 'size': len(self.ctx.dataset)}, CommitteeTrainingWorkChain, inputs)

    def inspect_tasks(self):
        """Take in every child that has ended since the last look, then decide whether the loop stops."""
        self.collect_ended(self._collect)
        if self.ctx.stop_reason is None:
            counts = self._counts()
            reason = policy.stop_reason(self.ctx.settings, counts)
            if reason is None and not self.ctx.running and not self._has_work():
                reason = 'nothing_to_run'
            if reason:
                self.ctx.stop_reason = reason
                self.report(f'the loop stops ({reason}) after {counts["labelled"]} labels; awaiting running children')

    def _counts(self) -> dict:
        """Return the numbers the stopping criteria look at."""
        return {
            'labelled': self.ctx.record['labelled'],
            'train': self.ctx.dataset.base.attributes.get('split_counts', {}).get('train', 0),
            'valid_mae': self.ctx.valid_mae,
            'training_failures': self.ctx.training_failures,
            'trajectories_done': sum(trajectory['status'] == 'done' for trajectory in self.ctx.trajectories),
        }

    def _has_work(self) -> bool:
        """Return whether anything could still be started."""
        idle = any(trajectory['status'] == 'idle' for trajectory in self.ctx.trajectories)
        return idle or bool(self.ctx.dft_queue) or self.ctx.train_requested

    def _collect(self, job: dict, child: orm.ProcessNode) -> None:
        """Take in the ended ``child`` of ``job``."""
        {'md': self._collect_segment, 'dft': self._collect_label, 'training': self._collect_training}[job['kind']](
            job, child
        )

    def _collect_segment(self, job: dict, child: orm.ProcessNode) -> None:
        """Feed the threshold; send an uncertain frame to DFT, or go on from the last frame, or back on instability."""
        index = job['trajectory']
        trajectory = self.ctx.trajectories[index]
        trajectory['segments'] += 1
        self.ctx.record['segments'] += 1
        if 'output_parameters' not in child.outputs or 'frames' not in child.outputs:
            trajectory['md_failures'] += 1
            self.report(f'trajectory {index}: segment {child.process_label}<{child.pk}> failed: {child.exit_message}')
            self._resume(index, trajectory['checkpoint'], abandon=trajectory['md_failures'] >= MAX_MD_FAILURES)
            return
        trajectory['md_failures'] = 0
        results, frames = child.outputs.output_parameters.get_dict(), child.outputs.frames
        trajectory['steps'] += results.get('num_steps', 0)
        uncertainties = [float(value) for value in child.outputs.trace.get_array('uncertainty') if value == value]
        if self.ctx.stop_reason is None:
            size = self._counts()['train']
            self.ctx.threshold = policy.update_threshold(self.ctx.threshold, uncertainties, size)
            self.ctx.record['thresholds'].append([self.ctx.threshold['num_values'], self.ctx.threshold['threshold']])
        reason = str(results.get('stop_reason', ''))
        if len(frames) == 0:  # stopped before its first check
            self._resume(index, trajectory['checkpoint'])
            return
        last = subset_dataset(frames, orm.List([len(frames) - 1]), metadata={'call_link_label': f'last_{index}'})
        if reason.startswith('uncertain') and self.ctx.stop_reason is None:
            self.ctx.record['crossings'] += 1
            trajectory.update(status='queued', frame=last.uuid)
            self.ctx.dft_queue.append(index)
        elif reason.startswith('unstable'):
            self.ctx.record['unstable'] += 1
            self.report(f'trajectory {index}: {reason}; back to its checkpoint')
            self._resume(index, trajectory['checkpoint'])
        else:
            self._resume(index, last.uuid)

    def _resume(self, index: int, start: str, abandon: bool = False) -> None:
        """Let trajectory ``index`` go on from ``start``, unless it ran its steps or is abandoned."""
        trajectory = self.ctx.trajectories[index]
        limit = self.ctx.settings['max_md_steps']
        done = abandon or (limit is not None and trajectory['steps'] >= limit)
        trajectory.update(status='done' if done else 'idle', start=start, frame=None)

    def _collect_label(self, job: dict, child: orm.ProcessNode) -> None:
        """Add the labelled frame to train or valid and go on from it; after a failed DFT, back to the checkpoint."""
        index = job['trajectory']
        trajectory = self.ctx.trajectories[index]
        labelled = child.outputs.labelled_dataset if 'labelled_dataset' in child.outputs else None
        if labelled is None or len(labelled) == 0:
            self.ctx.record['failed_labels'] += 1
            checkpoint = orm.load_node(trajectory['checkpoint'])
            self.report(
                f'trajectory {index}: the DFT of its frame failed ({child.process_label}<{child.pk}>): back to its '
                f'checkpoint PESData<{checkpoint.pk}>'
            )
            self._resume(index, trajectory['checkpoint'])
            return
        counts = self.ctx.dataset.base.attributes.get('split_counts', {})
        split = policy.route_point(
            counts.get('valid', 0), counts.get('train', 0) + counts.get('valid', 0), self.ctx.settings['valid_ratio']
        )
        self.ctx.dataset = add_labelled(
            self.ctx.dataset,
            labelled,
            orm.Str(split),
            metadata={'call_link_label': f'add_{self.ctx.record["labelled"]}'},
        )
        self.ctx.record['labelled'] += 1
        self.ctx.record['routed'][split] += 1
        self.ctx.train_requested = self.ctx.train_requested or split == 'train'
        trajectory['checkpoint'] = labelled.uuid
        self._resume(index, labelled.uuid)

    def _collect_training(self, job: dict, child: orm.ProcessNode) -> None:
        """Take the new committee and its validation errors; a failed chunk keeps the committee."""
        if not child.is_finished_ok:
            self.ctx.training_failures += 1
            self.report(f'training chunk {child.process_label}<{child.pk}> failed: {child.exit_message}')
            return
        self.ctx.training_failures = 0
        self.ctx.committee = {**self.ctx.committee, **child.outputs.models}  # a failed member keeps its weights
        self.ctx.version += 1
        errors = child.outputs.errors if 'errors' in child.outputs else {}
        self.ctx.errors = {name: node.get_dict() for name, node in errors.items()}
        self.ctx.valid_mae = ensemble_force_mae(list(self.ctx.errors.values()))
        self._choose_optimizers(child)
        self.ctx.record['trainings'].append({'version': self.ctx.version, 'frames': job['size'],
                                             'valid_force_mae': self.ctx.valid_mae,
                                             'resumed': sorted(self.ctx.resume)})  # fmt: skip
        self.report(
            f'committee {self.ctx.version} trained on {job["size"]} frames: valid force MAE {self.ctx.valid_mae}; '
            f'optimizers kept for {sorted(self.ctx.resume)}'
        )

    def _choose_optimizers(self, child: orm.WorkflowNode) -> None:
        """Decide per MACE member whether the next chunk keeps its optimizer (it still improves) or resets it."""
        losses = {}
        for name, metrics in child.outputs.metrics.items() if 'metrics' in child.outputs else []:
            best = self.ctx.errors.get(name, {}).get('best_epoch')
            if best is not None:
                losses[name] = saved_valid_loss(metrics.get_array('epoch'), metrics.get_array('valid_loss'), best)
        patience = self.ctx.settings['optimizer_patience']
        self.ctx.optimizer_state, actions = member_optimizer_states(self.ctx.optimizer_state, losses, patience)
        folders = child.outputs.remote_folders if 'remote_folders' in child.outputs else {}
        self.ctx.resume = {
            name: folders[name]
            for name, action in actions.items()
            if action == RESUME and name in folders and self.ctx.committee[name].architecture == 'mace'
        }

    def should_converge(self):
        """Train the best member to convergence if asked to and the members' errors say which is best."""
        if self.ctx.stop_reason == 'training_failed' or self.ctx.settings['convergence_epochs'] == 0:
            return False
        return policy.best_member(self.ctx.errors) is not None

    def run_convergence(self):
        """Train the best member from its weights on every labelled frame, for ``convergence_epochs`` epochs."""
        best = policy.best_member(self.ctx.errors)
        model = self.ctx.committee[best]
        engine = 'mace' if model.architecture == 'mace' else 'metatrain'
        committee_inputs = AttributeDict(self.exposed_inputs(CommitteeTrainingWorkChain, namespace='training'))
        with_epochs(committee_inputs, self.ctx.settings['convergence_epochs'])
        inputs = committee_inputs[engine]
        hyperparameters = inputs.train.hyperparameters.get_dict()
        if engine == 'mace':
            hyperparameters = without_architecture(hyperparameters)
        seed = self.ctx.settings['seed'] + int(best.removeprefix('member_'))
        start = {'dataset': self.ctx.dataset, 'seed': orm.Int(seed), 'restart_from': model}
        inputs.train = AttributeDict({**inputs.train, **start, 'hyperparameters': orm.Dict(hyperparameters)})
        inputs.metadata = {'call_link_label': f'convergence_{best}'}
        self.ctx.best = best
        self.report(f'training the best member, {best}, to convergence')
        return ToContext(convergence=self.submit(ENGINES[engine], **inputs))

    def inspect_convergence(self):
        """Keep the converged model."""
        child = self.ctx.convergence
        if not child.is_finished_ok:
            self.ctx.convergence_failure = child.exit_message or f'exit status {child.exit_status}'
            return
        self.ctx.model = child.outputs.model

    def results(self):
        """Attach the committee, the dataset, the converged model and the summary."""
        for name, model in self.ctx.committee.items():
            self.out(f'committee.{name}', model)
        self.out('dataset', self.ctx.dataset)
        if 'model' in self.ctx:
            self.out('model', self.ctx.model)
        record = {**self.ctx.record, 'stop_reason': self.ctx.stop_reason, 'best_member': self.ctx.get('best'),
                  'md_steps': [trajectory['steps'] for trajectory in self.ctx.trajectories]}  # fmt: skip
        self.out('summary', summarize_pax(orm.Dict(record), self.ctx.dataset, metadata={'call_link_label': 'summary'}))
        if self.ctx.stop_reason == 'training_failed':
            return self.exit_codes.ERROR_TRAINING_FAILED.format(count=self.ctx.training_failures)
        if 'convergence_failure' in self.ctx:
            return self.exit_codes.ERROR_CONVERGENCE_FAILED.format(message=self.ctx.convergence_failure)
        return None
