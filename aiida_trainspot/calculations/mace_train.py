"""``MaceTrainCalculation``: train a MACE potential with ``mace_run_train`` on the labelled frames of a dataset.

The job writes ``train.xyz``, ``valid.xyz`` and ``test.xyz`` from the frames' split tags (labelled frames only, labels
under ``REF_*`` keys, stress only for fully periodic frames) and ``config.yaml`` from the typed hyperparameters of
:mod:`aiida_trainspot.training.mace`; :class:`~aiida_trainspot.parsers.mace_train.MaceTrainParser` reads what MACE
wrote. Training can start from a previous model's weights (``restart_from``, continual learning), fine-tune a
foundation model file (``foundation_model``, naive or with ``replay_dataset``), or resume from the checkpoints of a
run that ran out of time (``parent_folder``).
"""

from __future__ import annotations

from aiida import orm
from aiida.common.datastructures import CalcInfo, CodeInfo
from aiida.common.folders import Folder
from aiida.engine import CalcJob

from ..data import PESData, PotentialData
from ..dataset import MACE_KEYS, write_extxyz
from ..training.mace import (
    ARCHITECTURE_KEYS,
    MODEL_NAME,
    MaceFiles,
    TrainingFrames,
    check_training_frames,
    config_yaml,
    render_config,
    select_e0s,
    summarize_training_frames,
    validate_hyperparameters,
    without_isolated_atoms,
)

START_MODELS = ('restart_from', 'foundation_model')
"""Inputs that give the model whose weights and architecture a run starts from."""


def validate_hyperparameters_port(value: orm.Dict, _) -> str | None:
    """Return a message naming the first invalid key of ``hyperparameters``."""
    try:
        validate_hyperparameters(value.get_dict())
    except ValueError as exception:
        return f'`hyperparameters`: {exception}'
    return None


def validate_seed(value: orm.Int, _) -> str | None:
    """Return a message if ``seed`` cannot seed numpy and torch."""
    if not 0 <= value.value < 2**32:
        return f'`seed` must be an integer in [0, 2**32), got {value.value}'
    return None


def validate_mace_model(value: PotentialData, port) -> str | None:
    """Return a message if the model is not a MACE model."""
    if value.architecture != 'mace':
        return f'`{port.name}` is a `{value.architecture}` model; MACE can only start from a `mace` model'
    return None


def validate_replay_dataset(value: PESData, _) -> str | None:
    """Return a message if ``replay_dataset`` has no labelled frame."""
    if not value.base.attributes.get('num_labelled', 0):
        return '`replay_dataset` has no labelled frame'
    return None


def _check_start_model(inputs, frames: TrainingFrames, hyperparameters: dict) -> str | None:
    """Return a message if the starting model (if any) cannot start a run on ``frames``."""
    given = [name for name in START_MODELS if name in inputs]
    if len(given) > 1:
        return '`restart_from` and `foundation_model` exclude each other: give one model to start from'
    if 'replay_dataset' in inputs and 'foundation_model' not in inputs:
        return '`replay_dataset` is only used to fine-tune a `foundation_model`'
    if not given:
        return None
    name, model = given[0], inputs[given[0]]
    fixed = sorted(set(hyperparameters) & set(ARCHITECTURE_KEYS))
    if fixed:
        return f'`hyperparameters` {fixed} cannot be set with `{name}`: the architecture is that of the starting model'
    missing = sorted(set(frames.all_species) - set(model.species))
    if missing:
        return f'`dataset` has elements {missing} that the `{name}` model does not know (it knows {model.species})'
    message = _check_replay(inputs, model)
    if message:
        return message
    e0s = select_e0s(frames, model.base.attributes.get('atomic_energies', None), True)
    if len(model.species) == 1 and e0s.value == 'foundation':
        return (
            f'`{name}` records no E0s and mace 0.3.16 cannot read those of a single-element model: add isolated atoms'
        )
    return None


def _check_replay(inputs, model: PotentialData) -> str | None:
    """Return a message if MACE cannot replay ``replay_dataset`` (if given) while fine-tuning ``model``."""
    if 'replay_dataset' not in inputs:
        return None
    missing = sorted(set(inputs['replay_dataset'].species) - set(model.species))
    if missing:
        return f'`replay_dataset` has elements {missing} that the `foundation_model` does not know'
    if len(model.species) == 1:
        return '`replay_dataset`: mace 0.3.16 cannot fine-tune a single-element foundation model with replay'
    return None


def _check_resources(inputs) -> str | None:
    """Return a message if the job would not run as one process on one machine."""
    options = inputs.get('metadata', {}).get('options', {})
    if options.get('withmpi'):
        return '`metadata.options.withmpi` must be False: `mace_run_train` is one process, threaded with OpenMP'
    machines = options.get('resources', {}).get('num_machines', 1)
    if machines != 1:
        return f'`metadata.options.resources.num_machines` must be 1, got {machines}'
    return None


def _check_parent_folder(inputs) -> str | None:
    """Return a message if the checkpoints of ``parent_folder`` cannot be resumed by this run."""
    parent, code = inputs.get('parent_folder'), inputs.get('code')
    if parent is None:
        return None
    if code is not None and parent.computer.uuid != code.computer.uuid:
        return f'`parent_folder` is on computer {parent.computer.label}, the `code` on {code.computer.label}'
    creator = parent.creator
    if creator is not None and 'seed' in creator.inputs and 'seed' in inputs:
        if creator.inputs.seed.value != inputs['seed'].value:
            return (
                f'`seed` {inputs["seed"].value} differs from the seed {creator.inputs.seed.value} of the run of '
                '`parent_folder`: MACE names its checkpoints after the seed and would start afresh'
            )
    return None


def validate_inputs(inputs, _) -> str | None:
    """Return a message naming the first invalid input, checked before anything runs."""
    code = inputs.get('code')
    if code is not None and code.default_calc_job_plugin not in (None, 'trainspot.mace_train'):
        return f'`code` {code.full_label} runs `{code.default_calc_job_plugin}`, expected `trainspot.mace_train`'
    message = _check_resources(inputs)
    if message or 'dataset' not in inputs:
        return message
    message = _check_parent_folder(inputs)
    if message:
        return message
    values = inputs['hyperparameters'].get_dict() if 'hyperparameters' in inputs else {}
    try:
        batch_size = validate_hyperparameters(values).batch_size
    except ValueError:
        return None  # the port validator of `hyperparameters` says why
    frames = summarize_training_frames(inputs['dataset'].iter_batches())
    message = check_training_frames(frames, batch_size)
    if message:
        return f'`dataset`: {message}'
    return _check_start_model(inputs, frames, values)


class MaceTrainCalculation(CalcJob):
    """Train one MACE model with ``mace_run_train`` on the labelled ``train`` frames of a dataset.

    The ``valid`` frames choose the saved model (the epoch with the lowest validation loss) and the ``test`` frames,
    if any, are only evaluated. ``OMP_NUM_THREADS`` is set to all the cores the job gets on its one machine (MPI
    processes per machine × cores per process): the trainer is one process, never launched through MPI.
    """

    _CONFIG_FILENAME = 'config.yaml'
    _OUTPUT_FILENAME = 'mace.out'
    _ERROR_FILENAME = 'mace.err'
    _START_MODEL_FILENAME = 'start.model'
    _REPLAY_FILENAME = 'replay.xyz'
    _CHECKPOINTS_FOLDER = 'checkpoints'
    _RESULTS_FOLDER = 'results'
    _MODEL_FILENAMES = (f'{MODEL_NAME}_stagetwo.model', f'{MODEL_NAME}.model')
    """The model files MACE saves (stage two first: when there is one, it is the final model)."""

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.input(
            'dataset',
            valid_type=PESData,
            help='The frames: labelled frames tagged `train` are fitted, `valid` choose the saved epoch, `test` are '
            'only evaluated. Frames without labels are left out; frames with an energy but no forces are refused.',
        )
        spec.input(
            'hyperparameters',
            valid_type=orm.Dict,
            required=False,
            validator=validate_hyperparameters_port,
            help='Settings of `mace_run_train` that differ from the defaults of '
            '`aiida_trainspot.training.mace.MaceHyperparameters` (the small model of aims-PAX Table I).',
        )
        spec.input(
            'seed',
            valid_type=orm.Int,
            default=lambda: orm.Int(0),
            validator=validate_seed,
            help='Seed of the initial weights and of the order of the batches; committee members differ by it.',
        )
        cls._define_starting_points(spec)
        spec.inputs.validator = validate_inputs
        options = spec.inputs['metadata']['options']
        options['parser_name'].default = 'trainspot.mace_train'
        options['input_filename'].default = cls._CONFIG_FILENAME
        options['output_filename'].default = cls._OUTPUT_FILENAME
        options['withmpi'].default = False
        options['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        cls._define_outputs(spec)

    @classmethod
    def _define_starting_points(cls, spec):
        """Define the inputs of a run that does not start from scratch: a model, or the checkpoints of a run."""
        spec.input(
            'restart_from',
            valid_type=PotentialData,
            required=False,
            validator=validate_mace_model,
            help='Continual learning: start from the weights, E0s and architecture of this MACE model.',
        )
        spec.input(
            'foundation_model',
            valid_type=PotentialData,
            required=False,
            validator=validate_mace_model,
            help='Fine-tuning: start from this MACE model file (never downloaded); naive unless `replay_dataset`.',
        )
        spec.input(
            'replay_dataset',
            valid_type=PESData,
            required=False,
            validator=validate_replay_dataset,
            help='Pre-training frames replayed on a second head while fine-tuning `foundation_model` (multi-head '
            'fine-tuning); the model of the dataset is the head `Default`.',
        )
        spec.input(
            'parent_folder',
            valid_type=orm.RemoteData,
            required=False,
            help='The remote folder of a run that stopped (e.g. out of walltime): resume from its latest checkpoint '
            'with the same other inputs.',
        )

    @classmethod
    def _define_outputs(cls, spec):
        """Define the outputs and exit codes."""
        spec.output(
            'model',
            valid_type=PotentialData,
            required=False,
            help='The deployable model (`mace.model`, loadable by `mace.calculators.MACECalculator`), with its '
            'species, cutoff, seed, dtype, dataset, starting model and E0s (`atomic_energies`, eV).',
        )
        spec.output(
            'metrics',
            valid_type=orm.ArrayData,
            required=False,
            help='One row per validation: `epoch` (epochs completed, 0 before training), `train_loss`, `valid_loss`, '
            'and the validation RMSE and MAE of energy (meV/atom), forces (meV/Å) and stress (meV/Å³).',
        )
        spec.output(
            'errors',
            valid_type=orm.Dict,
            required=False,
            help="MACE's final errors of the saved model on `train`, `valid` and `test` (RMSE; MAE on `valid`): "
            'energy (meV/atom), forces (meV/Å), stress (meV/Å³), and the epoch of the saved model.',
        )
        spec.default_output_node = 'errors'
        spec.exit_code(
            300, 'ERROR_OUTPUT_STDOUT_MISSING', message='The output of MACE was not retrieved.', invalidates_cache=True
        )
        spec.exit_code(
            302,
            'ERROR_OUTPUT_METRICS_MISSING',
            message='The per-epoch results of MACE are missing.',
            invalidates_cache=True,
        )
        spec.exit_code(
            310, 'ERROR_OUTPUT_UNREADABLE', message='`{filename}` cannot be read: {reason}', invalidates_cache=True
        )
        spec.exit_code(
            312,
            'ERROR_OUTPUT_STDOUT_INCOMPLETE',
            message='MACE stopped before the end: {reason}',
            invalidates_cache=True,
        )
        spec.exit_code(
            400,
            'ERROR_OUT_OF_WALLTIME',
            message='The training stopped out of walltime after {epochs} epochs: resume from `remote_folder`.',
        )
        spec.exit_code(410, 'ERROR_LOSS_NOT_FINITE', message='The training went wrong: {reason}')
        spec.exit_code(420, 'ERROR_OUT_OF_MEMORY', message='The training ran out of memory: {reason}')
        spec.exit_code(430, 'ERROR_MODEL_MISSING', message='MACE finished but wrote no model file.')

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        """Write the data files and ``config.yaml``; the starting model and checkpoints are copied next to them."""
        values = self.inputs.hyperparameters.get_dict() if 'hyperparameters' in self.inputs else {}
        hyperparameters = validate_hyperparameters(values)
        frames = summarize_training_frames(self.inputs.dataset.iter_batches())
        start = next((self.inputs[name] for name in START_MODELS if name in self.inputs), None)
        start_e0s = start.base.attributes.get('atomic_energies', None) if start else None
        e0s = select_e0s(frames, start_e0s, start is not None)
        files = MaceFiles(
            test='test.xyz' if frames.labelled['test'] else None,
            start_model=self._START_MODEL_FILENAME if start else None,
            replay=self._REPLAY_FILENAME if 'replay_dataset' in self.inputs else None,
        )
        dataset = self.inputs.dataset
        train = dataset.iter_batches(query={'labelled': True, 'split': 'train'})
        self._write_frames(folder, files.train, train if e0s.from_isolated_atoms else without_isolated_atoms(train))
        for split, filename in (('valid', files.valid), ('test', files.test)):
            if filename:
                self._write_frames(folder, filename, dataset.iter_batches(query={'labelled': True, 'split': split}))
        if files.replay:
            self._write_frames(folder, files.replay, self.inputs.replay_dataset.iter_batches(query={'labelled': True}))
        config = render_config(
            hyperparameters,
            seed=self.inputs.seed.value,
            files=files,
            e0s=e0s,
            train_with_stress=frames.train_with_stress,
            restart_latest='parent_folder' in self.inputs,
        )
        with folder.open(self._CONFIG_FILENAME, 'w', encoding='utf8') as handle:
            handle.write(config_yaml(config))
        return self._calcinfo(start)

    @staticmethod
    def _write_frames(folder: Folder, filename: str, batches) -> None:
        """Write the frames of ``batches`` to ``filename`` in extended XYZ, labels under MACE's ``REF_*`` keys."""
        with folder.open(filename, 'w', encoding='utf8') as handle:
            write_extxyz(batches, handle, MACE_KEYS)

    def _calcinfo(self, start: PotentialData | None) -> CalcInfo:
        """Return the command, the files to copy and to retrieve, and the ``OMP_NUM_THREADS`` of the job."""
        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = ['--config', self._CONFIG_FILENAME]
        codeinfo.stdout_name = self.options.output_filename
        codeinfo.stderr_name = self._ERROR_FILENAME

        calcinfo = CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.prepend_text = f'export OMP_NUM_THREADS={self._omp_threads()}'
        calcinfo.local_copy_list = []
        if start is not None:
            source = f'{PotentialData.MODEL_FOLDER}/{start.filename}'
            calcinfo.local_copy_list.append((start.uuid, source, self._START_MODEL_FILENAME))
        calcinfo.remote_copy_list = []
        if 'parent_folder' in self.inputs:
            parent = self.inputs.parent_folder
            calcinfo.remote_copy_list = [
                (parent.computer.uuid, f'{parent.get_remote_path()}/{name}', name)
                for name in (self._CHECKPOINTS_FOLDER, self._RESULTS_FOLDER)
            ]
        calcinfo.retrieve_list = [self.options.output_filename, self._ERROR_FILENAME, self._RESULTS_FOLDER]
        calcinfo.retrieve_temporary_list = list(self._MODEL_FILENAMES)
        return calcinfo

    def _omp_threads(self) -> int:
        """Return the number of cores the job gets on its machine: MPI processes per machine × cores per process."""
        computer = self.node.computer
        resources = dict(self.node.get_option('resources'))
        default = computer.get_default_mpiprocs_per_machine()
        if default is not None:
            resources.setdefault('num_mpiprocs_per_machine', default)
        job_resource = computer.get_scheduler().create_job_resource(**resources)
        cores_per_process = getattr(job_resource, 'num_cores_per_mpiproc', None) or 1
        return int(job_resource.get_tot_num_mpiprocs()) * int(cores_per_process)
