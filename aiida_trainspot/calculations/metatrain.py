"""``MetatrainCalculation``: train a PET or SOAP-BPNN interatomic potential with metatrain's ``mtt train``.

The job writes the labelled frames of each split (``train.xyz``, ``valid.xyz``, ``test.xyz``: energies, forces and
full 3×3 stresses under the keys of :data:`~aiida_trainspot.dataset.METATRAIN_KEYS`) and ``options.yaml``, and
runs ``mtt train options.yaml``; :class:`~aiida_trainspot.parsers.metatrain.MetatrainParser` turns what it wrote
into a ``PotentialData`` (the exported ``model.pt`` with its ``extensions/`` folder, and the checkpoint
``model.ckpt`` kept in the node under ``checkpoint/``), the per-epoch ``metrics`` and the final ``errors``.

A run starts from scratch, or goes on from a checkpoint with ``mtt train --restart``: that of ``parent_folder``
(the newest one a run stopped at its walltime saved) or that of ``restart_from`` (continual learning: the weights,
optimizer and learning-rate schedule of a trained model, for ``training.num_epochs`` more epochs), or fine-tunes
the checkpoint of ``foundation_model`` (PET only, metatrain's ``training.finetune``).
"""

from __future__ import annotations

import os
from typing import Any

from aiida import orm
from aiida.common.datastructures import CalcInfo, CodeInfo
from aiida.common.exceptions import NotExistent
from aiida.common.folders import Folder
from aiida.engine import CalcJob

from ..data import PESData, PotentialData
from ..dataset import METATRAIN_KEYS
from ..training.mace import summarize_training_frames
from ..training.metatrain import (
    FINETUNE_ARCHITECTURES,
    FOUNDATION_FILENAME,
    MetatrainHyperparameters,
    census_of_splits,
    options_yaml,
    parse_hyperparameters,
    render_options,
    validate_hyperparameters,
)
from ..training.metatrain_outputs import (
    CSV_FILENAME,
    ERROR_FILENAME,
    OPTIONS_FILENAME,
    read_metrics,
    read_resolved_options,
    resume_epoch,
)

PLUGIN = 'trainspot.metatrain'
CHECKPOINT_PATH = 'checkpoint/model.ckpt'
"""Where the parser keeps metatrain's checkpoint in the repository of the ``PotentialData`` it makes."""
CHECKPOINT_EPOCHS = 'checkpoint_epochs'
"""Attribute of that ``PotentialData``: the number of epochs the checkpoint has trained, over all its restarts."""
SEED_LIMIT = 2**32


def checkpoint_path(potential: PotentialData) -> str | None:
    """Return the repository path of the metatrain checkpoint ``potential`` holds, or ``None``.

    That is its model file if it is a checkpoint (``*.ckpt``, as foundation models are distributed), else the one the
    parser kept next to an exported model.
    """
    if potential.filename and potential.filename.endswith('.ckpt'):
        return f'{PotentialData.MODEL_FOLDER}/{potential.filename}'
    if os.path.dirname(CHECKPOINT_PATH) in potential.base.repository.list_object_names():
        return CHECKPOINT_PATH
    return None


def run_folder(retrieved: orm.FolderData) -> str | None:
    """Return ``outputs/<date>/<time>``, the folder where ``mtt train`` wrote its log and checkpoints, if retrieved."""
    repository = retrieved.base.repository
    try:
        dates = repository.list_object_names('outputs')
        folders = [
            f'outputs/{date}/{time}' for date in dates for time in repository.list_object_names(f'outputs/{date}')
        ]
    except (FileNotFoundError, NotADirectoryError):
        return None
    return sorted(folders)[-1] if folders else None


def resume_checkpoint(parent_folder: orm.RemoteData) -> tuple[str | None, str | None]:
    """Return the checkpoint to go on from, relative to ``parent_folder``, and ``None``; or ``None`` and why not.

    The newest ``model_<epoch>.ckpt`` the run saved, from the epochs in its ``train.csv`` and the checkpoint interval
    in its ``options_restart.yaml``; if it saved none, the checkpoint it started from itself, if any.
    """
    calculation = parent_folder.creator
    if calculation is None or calculation.process_type != f'aiida.calculations:{PLUGIN}':
        return None, '`parent_folder` must be the `remote_folder` of a `MetatrainCalculation`'
    try:
        retrieved = calculation.outputs.retrieved
    except NotExistent:
        return None, f'`parent_folder`: its calculation<{calculation.pk}> has no retrieved files to find checkpoints'
    folder = run_folder(retrieved)
    try:
        metrics = read_metrics(retrieved.get_object_content(f'{folder}/{CSV_FILENAME}'))
        options = read_resolved_options(retrieved.get_object_content(f'{folder}/{OPTIONS_FILENAME}'))
        epoch = resume_epoch(metrics.epochs, int(options['architecture']['training']['checkpoint_interval']))
    except (FileNotFoundError, KeyError, TypeError, ValueError) as exception:
        return None, f'`parent_folder`: the metrics of calculation<{calculation.pk}> cannot be read ({exception})'
    if epoch is not None:
        return f'{folder}/model_{epoch}.ckpt', None
    if 'parent_folder' in calculation.inputs or 'restart_from' in calculation.inputs:
        return MetatrainCalculation._RESTART_FILENAME, None
    return None, (
        f'`parent_folder`: calculation<{calculation.pk}> saved no checkpoint (it stopped before the end of its first '
        'epoch); leave `parent_folder` out to start over'
    )


def validate_hyperparameters_port(value: orm.Dict, _) -> str | None:
    """Return a message naming the first hyperparameter ``mtt train`` would reject."""
    try:
        validate_hyperparameters(value.get_dict())
    except ValueError as exception:
        return f'`hyperparameters`: {exception}'
    return None


def validate_seed(value: orm.Int, _) -> str | None:
    """Return a message if ``seed`` is not a seed metatrain takes."""
    if not 0 <= value.value < SEED_LIMIT:
        return f'`seed` must be between 0 and 2**32 - 1, got {value.value}'
    return None


def _check_dataset(dataset: PESData) -> tuple[set[str], str | None]:
    """Return the elements of the labelled frames of ``dataset`` and a message if metatrain cannot train on them."""
    frames = summarize_training_frames(dataset.iter_batches())
    for split, count in frames.energy_without_forces.items():
        if count:
            return set(), f'`dataset`: {count} `{split}` frames have an energy but no forces; label them or drop them'
    if not frames.labelled['train']:
        return set(), '`dataset`: no labelled frame has the split tag `train`'
    if not frames.labelled['valid']:
        return set(), '`dataset`: no labelled frame has the split tag `valid`: the validation set would be empty'
    untrained = sorted((frames.species['valid'] | frames.species['test']) - frames.species['train'])
    if untrained:
        return set(), f'`dataset`: elements {untrained} are in `valid` or `test` frames but in no `train` frame'
    return set(frames.all_species), None


def _check_start_model(name: str, model: PotentialData, architecture: str, elements: set[str]) -> str | None:
    """Return a message if the starting model ``name`` cannot start a run of ``architecture`` on ``elements``."""
    if model.architecture != architecture:
        return f'`{name}` is a `{model.architecture}` model, `hyperparameters.architecture` is `{architecture}`'
    if checkpoint_path(model) is None:
        return f'`{name}` holds no metatrain checkpoint (`.ckpt`) to start from'
    missing = sorted(elements - set(model.species))
    if missing:
        return f'`{name}` does not know the elements {missing} of `dataset` (it knows {model.species})'
    return None


def _check_restart_from(model: PotentialData, hyperparameters: MetatrainHyperparameters) -> str | None:
    """Return a message if continual learning from ``model`` lacks what it needs."""
    if model.base.attributes.get(CHECKPOINT_EPOCHS, None) is None:
        return f'`restart_from` has no `{CHECKPOINT_EPOCHS}`: give a model a `MetatrainCalculation` trained'
    if 'num_epochs' not in hyperparameters.training:
        return '`hyperparameters.training.num_epochs` is required with `restart_from`: the epochs to add'
    return None


def _check_foundation(values: dict[str, Any]) -> str | None:
    """Return a message if metatrain cannot fine-tune with the hyperparameters ``values``."""
    try:
        validate_hyperparameters(values, finetune=True)
    except ValueError as exception:
        return f'`hyperparameters`: {exception}'
    return None


def _check_start(inputs, hyperparameters: MetatrainHyperparameters, elements: set[str]) -> str | None:
    """Return a message if ``restart_from`` or ``foundation_model`` cannot start this run."""
    if 'restart_from' in inputs and 'foundation_model' in inputs:
        return 'give `restart_from` (continual learning) or `foundation_model` (fine-tuning), not both'
    architecture = hyperparameters.architecture
    if 'foundation_model' in inputs and architecture not in FINETUNE_ARCHITECTURES:
        return f'`foundation_model`: metatrain fine-tunes {list(FINETUNE_ARCHITECTURES)} models, not `{architecture}`'
    for name in ('restart_from', 'foundation_model'):
        if name in inputs:
            message = _check_start_model(name, inputs[name], architecture, elements)
            if message:
                return message
    if 'restart_from' in inputs:
        return _check_restart_from(inputs['restart_from'], hyperparameters)
    if 'foundation_model' in inputs:
        return _check_foundation(inputs['hyperparameters'].get_dict() if 'hyperparameters' in inputs else {})
    return None


def validate_inputs(inputs, _) -> str | None:
    """Return a message naming the first invalid input, checked before anything runs."""
    code = inputs.get('code')
    if code is not None and code.default_calc_job_plugin not in (None, PLUGIN):
        return f'`code` {code.full_label} runs `{code.default_calc_job_plugin}`, expected `{PLUGIN}`'
    try:
        hyperparameters = parse_hyperparameters(
            inputs['hyperparameters'].get_dict() if 'hyperparameters' in inputs else {}
        )
    except ValueError as exception:
        return f'`hyperparameters`: {exception}'
    elements, message = _check_dataset(inputs['dataset']) if 'dataset' in inputs else (set(), None)
    message = message or _check_start(inputs, hyperparameters, elements)
    if message or 'parent_folder' not in inputs:
        return message
    parent_folder = inputs['parent_folder']
    if code is not None and parent_folder.computer.uuid != code.computer.uuid:
        return f'`parent_folder` is on computer `{parent_folder.computer.label}`, not on that of `code`'
    return resume_checkpoint(parent_folder)[1]


def omp_threads(resources: dict[str, Any], withmpi: bool) -> int | None:
    """Return the threads ``mtt train`` gets: the cores of its one process, or ``None`` if ``resources`` do not say.

    ``num_cores_per_mpiproc`` if given; else, without MPI, ``num_mpiprocs_per_machine`` (the cores reserved for the
    one process). On SLURM give ``num_mpiprocs_per_machine: 1`` and ``num_cores_per_mpiproc``: metatrain trains in
    parallel over tasks when a job has more than one.
    """
    threads = resources.get('num_cores_per_mpiproc') or (None if withmpi else resources.get('num_mpiprocs_per_machine'))
    return int(threads) if threads else None


class MetatrainCalculation(CalcJob):
    """Train a PET or SOAP-BPNN potential on the labelled frames of a dataset with ``mtt train`` (metatrain).

    The frames tagged ``train`` form the training set, ``valid`` the validation set and ``test`` (if any) the test
    set; only labelled frames (energy and forces) are written, with their stress where they have one. The code is
    metatrain's ``mtt`` executable; it runs as one process whose ``OMP_NUM_THREADS`` matches the cores the job
    reserved (see :func:`omp_threads`).
    """

    _OPTIONS_FILENAME = 'options.yaml'
    _SPLIT_FILENAMES = {'train': 'train.xyz', 'valid': 'valid.xyz', 'test': 'test.xyz'}
    _RESTART_FILENAME = 'restart.ckpt'
    _MODEL_FILENAME = 'model.pt'
    _CHECKPOINT_FILENAME = 'model.ckpt'
    _EXTENSIONS_FOLDER = 'extensions'
    _OUTPUT_FILENAME = 'mtt.out'
    _ERROR_FILENAME = 'mtt.err'
    _RUN_FILES = (CSV_FILENAME, OPTIONS_FILENAME, ERROR_FILENAME)
    """What ``mtt train`` writes in ``outputs/<date>/<time>/`` that the parser reads."""

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.input(
            'dataset',
            valid_type=PESData,
            help='The frames to train on: labelled frames (energy and forces, stress where periodic) tagged `train`, '
            '`valid` and optionally `test`; the others are left out.',
        )
        spec.input(
            'hyperparameters',
            valid_type=orm.Dict,
            required=False,
            validator=validate_hyperparameters_port,
            help='`architecture` (`pet`, the default, or `soap_bpnn`), `base_precision` (32 or 64), `device`, and '
            "`model` and `training`: overrides of metatrain's hyperparameters of the architecture (e.g. "
            '`{"training": {"num_epochs": 100, "batch_size": 8}}`); every other value is metatrain\'s default.',
        )
        spec.input(
            'seed',
            valid_type=orm.Int,
            default=lambda: orm.Int(0),
            validator=validate_seed,
            help='Seed of every random choice of the training (initial weights, batches); members of a committee '
            'differ by it.',
        )
        spec.input(
            'restart_from',
            valid_type=PotentialData,
            required=False,
            help='Continual learning: a model a `MetatrainCalculation` trained; training goes on from its checkpoint '
            '(weights, optimizer, learning-rate schedule) for `training.num_epochs` more epochs.',
        )
        spec.input(
            'foundation_model',
            valid_type=PotentialData,
            required=False,
            help="Fine-tuning: a PET checkpoint (e.g. PET-MAD's `.ckpt`, or a model a `MetatrainCalculation` trained)"
            " that knows every element of `dataset`; `training.finetune.method` picks metatrain's method.",
        )
        spec.input(
            'parent_folder',
            valid_type=orm.RemoteData,
            required=False,
            help='The `remote_folder` of a `MetatrainCalculation` that stopped at its walltime: training goes on from '
            'the newest checkpoint it saved, with the same inputs.',
        )
        spec.inputs.validator = validate_inputs
        options = spec.inputs['metadata']['options']
        options['parser_name'].default = PLUGIN
        options['output_filename'].default = cls._OUTPUT_FILENAME
        options['withmpi'].default = False
        options['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        spec.output(
            'model',
            valid_type=PotentialData,
            help="The exported model (`model.pt`, with `extensions/` for SOAP-BPNN) for metatomic's ASE calculator "
            'and LAMMPS, with the checkpoint `checkpoint/model.ckpt` to go on training from.',
        )
        spec.output(
            'metrics',
            valid_type=orm.ArrayData,
            help='One row per epoch, as metatrain logged it: `epoch`, `learning_rate`, `training_loss`, '
            '`validation_loss`, `<set>_energy_rmse_per_atom` (meV/atom), `<set>_forces_rmse` (meV/Å), '
            '`<set>_virial_rmse_per_atom` (meV/atom, if stress is trained); units in the `units` attribute. '
            'Also attached, as far as it got, when the run failed.',
        )
        spec.output(
            'errors',
            valid_type=orm.Dict,
            help='Errors of the final model on each set (`train`, `valid`, `test`) as metatrain reported them: '
            '`energy_rmse_per_atom`, `energy_mae_per_atom` (meV/atom), `forces_rmse`, `forces_mae` (meV/Å), '
            '`virial_rmse_per_atom`, `virial_mae_per_atom` (meV/atom); `units` names them.',
        )
        spec.default_output_node = 'errors'
        spec.exit_code(300, 'ERROR_OUTPUT_STDOUT_MISSING', message='The standard output of `mtt train` is missing.')
        spec.exit_code(302, 'ERROR_OUTPUT_FILES_MISSING', message='`{filename}` was not written or not retrieved.')
        spec.exit_code(310, 'ERROR_OUTPUT_UNREADABLE', message='`{filename}` cannot be read: {reason}')
        spec.exit_code(320, 'ERROR_TRAINER_FAILED', message='`mtt train` failed: {reason}')
        spec.exit_code(
            400,
            'ERROR_OUT_OF_WALLTIME',
            message='Training stopped at the walltime ({reason}); go on from `remote_folder` as `parent_folder`.',
        )
        spec.exit_code(410, 'ERROR_LOSS_NOT_FINITE', message='The loss is not finite or diverges: {reason}')
        spec.exit_code(420, 'ERROR_OUT_OF_MEMORY', message='Training ran out of memory: {reason}')
        spec.exit_code(430, 'ERROR_MODEL_MISSING', message='Training finished but `{filename}` is missing.')

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        """Write the frames of each split and ``options.yaml``; have the starting checkpoint copied next to them."""
        values = self.inputs.hyperparameters.get_dict() if 'hyperparameters' in self.inputs else {}
        hyperparameters = parse_hyperparameters(values)
        dataset = self.inputs.dataset
        census = census_of_splits(dataset.iter_batches())
        files = {split: self._SPLIT_FILENAMES[split] for split in census.splits()}
        for split, filename in files.items():
            dataset.write_extxyz(folder.get_abs_path(filename), METATRAIN_KEYS, {'labelled': True, 'split': split})

        calcinfo = CalcInfo()
        calcinfo.local_copy_list, calcinfo.remote_copy_list = [], []
        arguments = ['train', self._OPTIONS_FILENAME, '-o', self._MODEL_FILENAME, '-e', self._EXTENSIONS_FOLDER]
        epochs = None
        if 'restart_from' in self.inputs:
            model = self.inputs.restart_from
            epochs = model.base.attributes.get(CHECKPOINT_EPOCHS) + int(hyperparameters.training['num_epochs'])
        if 'parent_folder' in self.inputs:
            parent_folder = self.inputs.parent_folder
            relative, _ = resume_checkpoint(parent_folder)
            source = os.path.join(parent_folder.get_remote_path(), relative)
            calcinfo.remote_copy_list.append((parent_folder.computer.uuid, source, self._RESTART_FILENAME))
        elif 'restart_from' in self.inputs:
            source = checkpoint_path(self.inputs.restart_from)
            calcinfo.local_copy_list.append((self.inputs.restart_from.uuid, source, self._RESTART_FILENAME))
        if calcinfo.local_copy_list or calcinfo.remote_copy_list:
            arguments += ['--restart', self._RESTART_FILENAME]
        if 'foundation_model' in self.inputs:
            source = checkpoint_path(self.inputs.foundation_model)
            calcinfo.local_copy_list.append((self.inputs.foundation_model.uuid, source, FOUNDATION_FILENAME))

        options = render_options(
            hyperparameters,
            seed=self.inputs.seed.value,
            files=files,
            stress=census.trains_stress(),
            epochs=epochs,
            finetune_from=FOUNDATION_FILENAME if 'foundation_model' in self.inputs else None,
        )
        with folder.open(self._OPTIONS_FILENAME, 'w', encoding='utf8') as handle:
            handle.write(options_yaml(options))

        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = arguments
        codeinfo.stdout_name = self.options.output_filename
        codeinfo.stderr_name = self._ERROR_FILENAME

        threads = omp_threads(self.node.get_option('resources'), self.node.get_option('withmpi'))
        calcinfo.prepend_text = f'export OMP_NUM_THREADS={threads}' if threads else None
        calcinfo.codes_info = [codeinfo]
        calcinfo.retrieve_list = [
            self.options.output_filename,
            self._ERROR_FILENAME,
            *((f'outputs/*/*/{name}', '.', 4) for name in self._RUN_FILES),
        ]
        calcinfo.retrieve_temporary_list = [self._MODEL_FILENAME, self._CHECKPOINT_FILENAME, self._EXTENSIONS_FOLDER]
        return calcinfo
