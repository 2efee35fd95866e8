"""MACE training inputs: the hyperparameter schema, the checks of a training set, the E0s and the ``config.yaml``.

One source of defaults: :class:`MaceHyperparameters`, the small model of aims-PAX's Table I (32 channels, L_max 1,
r_max 6 Å, 8 Bessel functions, 2 interactions, correlation 3, radial MLP 3×32, readout 128x0e) trained as there
(AMSGrad, learning rate 0.01 reduced by 0.8 on plateaus of 5 epochs, EMA 0.99, gradient clipping 10, energy/forces
weights 1/1000, batch 5). Keys are those of ``mace_run_train`` (mace-torch 0.3.16), so its documentation applies.
No AiiDA and no torch here: :class:`~aiida_trainspot.calculations.mace_train.MaceTrainCalculation` uses these
functions to check its inputs and write the files.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml
from ase.data import atomic_numbers, chemical_symbols

from ..dataset import FrameBatch
from ..dataset.frame import SPLITS

TRAINING_SPLITS = SPLITS[1:]
"""The split tags MACE reads: ``train``, ``valid`` and ``test``."""
MODEL_NAME = 'mace'
"""The ``name`` of every run: the model is ``mace.model``, checkpoints ``checkpoints/mace_run-<seed>_epoch-N.pt``."""
MLP_IRREPS = re.compile(r'[1-9]\d*x0e')


def _option(default: Any, help: str, **checks: Any) -> Any:
    """Return a dataclass field with ``default`` and the ``help`` and ``checks`` that :func:`_checked` applies.

    ``checks``: ``choices`` (allowed values), ``minimum`` (inclusive), ``positive`` (strictly above zero),
    ``kind`` (the type when ``default`` is ``None``) and ``architecture`` (fixed by a starting model).
    """
    metadata = {'help': help, 'kind': checks.pop('kind', type(default)), **checks}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class MaceHyperparameters:
    """The ``mace_run_train`` settings a user may choose, with defaults; build it with :func:`validate_hyperparameters`.

    Architecture keys (``architecture=True``) are taken from the starting model when training continues from one
    (``restart_from``, ``foundation_model``); setting them then is an error.
    """

    model: str = _option('MACE', 'model class', choices=('MACE', 'ScaleShiftMACE'), architecture=True)
    num_channels: int = _option(32, 'channels of the node features', minimum=1, architecture=True)
    max_L: int = _option(1, 'largest L of the messages (equivariance order)', minimum=0, architecture=True)  # noqa: N815
    max_ell: int = _option(3, 'largest l of the spherical harmonics', minimum=1, architecture=True)
    r_max: float = _option(6.0, 'cutoff radius (Å)', positive=True, architecture=True)
    num_radial_basis: int = _option(8, 'Bessel radial basis functions', minimum=1, architecture=True)
    num_cutoff_basis: int = _option(5, 'order of the polynomial cutoff', minimum=1, architecture=True)
    num_interactions: int = _option(2, 'message-passing layers', minimum=1, architecture=True)
    correlation: int = _option(3, 'correlation order of each layer', minimum=1, architecture=True)
    radial_MLP: tuple[int, ...] = _option((32, 32, 32), 'widths of the radial MLP layers', architecture=True)  # noqa: N815
    MLP_irreps: str = _option('128x0e', 'hidden irreps of the last readout, `<n>x0e`', architecture=True)
    gate: str = _option('silu', 'non-linearity of the readout', choices=('silu', 'tanh', 'abs'), architecture=True)
    scaling: str = _option(
        'rms_forces_scaling',
        'scaling of the output',
        choices=('rms_forces_scaling', 'std_scaling', 'no_scaling'),
        architecture=True,
    )
    default_dtype: str = _option('float64', 'floating-point precision', choices=('float64', 'float32'))
    device: str = _option('cpu', 'device that trains', choices=('cpu', 'cuda'))
    batch_size: int = _option(5, 'frames per training batch', minimum=1)
    valid_batch_size: int = _option(5, 'frames per validation batch', minimum=1)
    max_num_epochs: int = _option(500, 'largest number of epochs', minimum=1)
    patience: int = _option(50, 'epochs without a better validation loss before stopping', minimum=1)
    optimizer: str = _option('adam', 'optimizer (always with AMSGrad)', choices=('adam', 'adamw'))
    lr: float = _option(0.01, 'learning rate', positive=True)
    weight_decay: float = _option(5e-7, 'weight decay (L2 penalty)', minimum=0.0)
    scheduler: str = _option('ReduceLROnPlateau', 'scheduler', choices=('ReduceLROnPlateau', 'ExponentialLR'))
    lr_factor: float = _option(0.8, 'factor of the learning rate on a plateau', positive=True)
    scheduler_patience: int = _option(5, 'epochs of a plateau before the learning rate drops', minimum=0)
    lr_scheduler_gamma: float = _option(0.9993, 'decay of `ExponentialLR` per epoch', positive=True)
    ema: bool = _option(True, 'exponential moving average of the weights')
    ema_decay: float = _option(0.99, 'decay of the moving average (below 1)', positive=True)
    clip_grad: float = _option(10.0, 'largest gradient norm', positive=True)
    loss: str = _option(
        'auto',
        'loss: `auto` is `stress` when training frames carry stress, else `weighted` (energy and forces)',
        choices=('auto', 'weighted', 'stress', 'huber', 'universal', 'forces_only'),
    )
    energy_weight: float = _option(1.0, 'weight of the energy loss', minimum=0.0)
    forces_weight: float = _option(1000.0, 'weight of the forces loss', minimum=0.0)
    stress_weight: float = _option(1.0, 'weight of the stress loss', minimum=0.0)
    swa: bool = _option(False, 'stage two: lower learning rate and other weights for the last epochs')
    start_swa: int | None = _option(None, 'first epoch of stage two (MACE: 3/4 of the epochs)', minimum=0, kind=int)
    swa_lr: float = _option(1e-3, 'learning rate of stage two', positive=True)
    swa_energy_weight: float = _option(1000.0, 'energy weight of stage two', minimum=0.0)
    swa_forces_weight: float = _option(100.0, 'forces weight of stage two', minimum=0.0)


HYPERPARAMETERS = {item.name: item for item in dataclasses.fields(MaceHyperparameters)}
ARCHITECTURE_KEYS = tuple(name for name, item in HYPERPARAMETERS.items() if item.metadata.get('architecture'))
"""Keys a starting model fixes: MACE builds the new model from the starting model's own architecture."""


def _checked(name: str, value: Any, metadata: Mapping[str, Any]) -> Any:
    """Return ``value`` as the type of hyperparameter ``name``, or raise ``ValueError`` naming it."""
    kind = metadata['kind']
    if value is None and HYPERPARAMETERS[name].default is None:
        return None
    if kind is bool and not isinstance(value, bool):
        raise ValueError(f'`{name}` must be true or false, got {value!r}')
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f'`{name}` must be an integer, got {value!r}')
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f'`{name}` must be a finite number, got {value!r}')
        value = float(value)
    if kind is str and not isinstance(value, str):
        raise ValueError(f'`{name}` must be a string, got {value!r}')
    if 'choices' in metadata and value not in metadata['choices']:
        raise ValueError(f'`{name}` must be one of {list(metadata["choices"])}, got {value!r}')
    if kind is tuple:
        if not isinstance(value, list | tuple) or not value or not all(_is_count(item) for item in value):
            raise ValueError(f'`{name}` must be a non-empty list of positive integers, got {value!r}')
        value = tuple(value)
    if 'minimum' in metadata and value < metadata['minimum']:
        raise ValueError(f'`{name}` must be at least {metadata["minimum"]}, got {value!r}')
    if metadata.get('positive') and not value > 0:
        raise ValueError(f'`{name}` must be positive, got {value!r}')
    return value


def _is_count(value: Any) -> bool:
    """Return whether ``value`` is a positive integer (not a boolean)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def validate_hyperparameters(values: Mapping[str, Any] | None = None) -> MaceHyperparameters:
    """Return the hyperparameters: the defaults updated with ``values``; raise ``ValueError`` naming a bad key."""
    values = dict(values or {})
    unknown = sorted(set(values) - set(HYPERPARAMETERS))
    if unknown:
        hint = ' (give it as the `seed` input)' if unknown[0] == 'seed' else ''
        raise ValueError(f'unknown hyperparameter `{unknown[0]}`{hint}; known: {", ".join(HYPERPARAMETERS)}')
    checked = {name: _checked(name, value, HYPERPARAMETERS[name].metadata) for name, value in values.items()}
    hyperparameters = MaceHyperparameters(**checked)
    if not MLP_IRREPS.fullmatch(hyperparameters.MLP_irreps):
        raise ValueError(f'`MLP_irreps` must be scalar irreps like `16x0e`, got {hyperparameters.MLP_irreps!r}')
    if hyperparameters.ema_decay >= 1:
        raise ValueError(f'`ema_decay` must be below 1, got {hyperparameters.ema_decay}')
    if hyperparameters.swa and (hyperparameters.start_swa or 0) >= hyperparameters.max_num_epochs:
        raise ValueError(f'`start_swa` must be below `max_num_epochs` ({hyperparameters.max_num_epochs})')
    return hyperparameters


@dataclass
class TrainingFrames:
    """What the frames of a dataset give MACE, counted per split tag: see :func:`summarize_training_frames`."""

    labelled: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TRAINING_SPLITS, 0))
    energy_without_forces: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TRAINING_SPLITS, 0))
    species: dict[str, set[str]] = field(default_factory=lambda: {split: set() for split in TRAINING_SPLITS})
    isolated_atom_energies: dict[str, float] = field(default_factory=dict)
    train_isolated_atoms: int = 0
    train_with_stress: int = 0

    @property
    def all_species(self) -> list[str]:
        """Return the elements of the labelled frames, sorted by atomic number."""
        return sorted(set().union(*self.species.values()), key=atomic_numbers.__getitem__)


def isolated_atom_mask(batch: FrameBatch) -> np.ndarray:
    """Return the mask of single-atom non-periodic frames: those MACE reads as isolated atoms (``IsolatedAtom``)."""
    return (batch.natoms == 1) & ~batch.pbc.any(axis=1)


def summarize_training_frames(batches: Iterable[FrameBatch]) -> TrainingFrames:
    """Return the counts, species, isolated-atom energies and stress labels of the frames MACE would read."""
    summary = TrainingFrames()
    for batch in batches:
        labelled, isolated = batch.labelled, isolated_atom_mask(batch)
        has_energy = ~np.isnan(batch.energy)
        has_stress = ~np.isnan(batch.stress).any(axis=(1, 2))
        offsets = batch.offsets
        for split in TRAINING_SPLITS:
            in_split = batch.split == SPLITS.index(split)
            summary.labelled[split] += int((in_split & labelled).sum())
            summary.energy_without_forces[split] += int((in_split & has_energy & ~labelled).sum())
            for index in np.flatnonzero(in_split & labelled):
                summary.species[split].update(_symbols(batch.numbers[offsets[index] : offsets[index + 1]]))
        train = (batch.split == SPLITS.index('train')) & labelled
        summary.train_isolated_atoms += int((train & isolated).sum())
        summary.train_with_stress += int((train & has_stress & ~isolated).sum())
        for index in np.flatnonzero(train & isolated):
            (symbol,) = _symbols(batch.numbers[offsets[index] : offsets[index + 1]])
            summary.isolated_atom_energies[symbol] = float(batch.energy[index])
    return summary


def _symbols(numbers: np.ndarray) -> set[str]:
    """Return the chemical symbols of atomic ``numbers``."""
    return {chemical_symbols[number] for number in np.unique(numbers)}


def check_training_frames(frames: TrainingFrames, batch_size: int) -> str | None:
    """Return a message if MACE cannot train on ``frames`` with batches of ``batch_size``, else ``None``."""
    for split, count in frames.energy_without_forces.items():
        if count:
            return f'{count} `{split}` frames have an energy but no forces: MACE fits both; label them or drop them'
    if not frames.labelled['train']:
        return 'no labelled frame has the split tag `train`'
    trainable = frames.labelled['train'] - frames.train_isolated_atoms
    if trainable < batch_size:
        return (
            f'{trainable} labelled `train` frames (isolated atoms apart) are fewer than `hyperparameters.batch_size` '
            f'{batch_size}: MACE drops incomplete batches and would not train'
        )
    if not frames.labelled['valid']:
        return 'no labelled frame has the split tag `valid`: the validation set would be empty'
    untrained = sorted((frames.species['valid'] | frames.species['test']) - frames.species['train'])
    if untrained:
        return f'elements {untrained} are in `valid` or `test` frames but in no `train` frame'
    return None


@dataclass(frozen=True)
class E0Choice:
    """The atomic reference energies (E0s) MACE uses: an ``{atomic number: eV}`` dict, ``average`` or ``foundation``.

    ``from_isolated_atoms`` says whether the training file keeps its isolated atoms (MACE reads E0s from them
    whenever there are any, so they are left out when they do not cover every element).
    """

    value: dict[int, float] | str
    from_isolated_atoms: bool


def select_e0s(frames: TrainingFrames, start_model_e0s: Mapping[str, float] | None, has_start_model: bool) -> E0Choice:
    """Return the E0s: isolated atoms of every element, else the starting model's, else a least-squares fit.

    ``start_model_e0s`` are the E0s recorded on the starting model (``restart_from`` or ``foundation_model``), if any;
    without them MACE reads them from the model file (``foundation``).
    """
    elements = frames.species['train'] | frames.species['valid'] | frames.species['test']
    isolated = frames.isolated_atom_energies
    if elements and elements <= set(isolated):
        return E0Choice({atomic_numbers[symbol]: isolated[symbol] for symbol in sorted(elements)}, True)
    if not has_start_model:
        return E0Choice('average', False)
    if start_model_e0s and elements <= set(start_model_e0s):
        return E0Choice({atomic_numbers[symbol]: float(start_model_e0s[symbol]) for symbol in sorted(elements)}, False)
    return E0Choice('foundation', False)


def without_isolated_atoms(batches: Iterable[FrameBatch]) -> Iterator[FrameBatch]:
    """Yield ``batches`` without their isolated atoms."""
    for batch in batches:
        keep = np.flatnonzero(~isolated_atom_mask(batch))
        if len(keep):
            yield batch.take(keep)


@dataclass(frozen=True)
class MaceFiles:
    """The files a run reads, relative to its working directory; ``None`` for those it does not have."""

    train: str = 'train.xyz'
    valid: str = 'valid.xyz'
    test: str | None = 'test.xyz'
    start_model: str | None = None
    replay: str | None = None


def resolve_loss(hyperparameters: MaceHyperparameters, train_with_stress: int) -> str:
    """Return the MACE loss: ``auto`` becomes ``stress`` if training frames carry stress, else ``weighted``."""
    if hyperparameters.loss != 'auto':
        return hyperparameters.loss
    return 'stress' if train_with_stress else 'weighted'


def render_config(
    hyperparameters: MaceHyperparameters,
    *,
    seed: int,
    files: MaceFiles,
    e0s: E0Choice,
    train_with_stress: int,
    restart_latest: bool = False,
) -> dict[str, Any]:
    """Return the ``mace_run_train`` settings of a run, in the order they are written to ``config.yaml``.

    With ``files.start_model`` the run starts from that model's weights and architecture (the architecture keys are
    left out); with ``files.replay`` too it fine-tunes with a second head on those frames (multi-head replay).
    ``restart_latest`` resumes from the newest checkpoint in ``checkpoints/``.
    """
    loss = resolve_loss(hyperparameters, train_with_stress)
    config: dict[str, Any] = {
        'name': MODEL_NAME,
        'seed': seed,
        'train_file': files.train,
        'valid_file': files.valid,
        **({'test_file': files.test} if files.test else {}),
        'energy_key': 'REF_energy',
        'forces_key': 'REF_forces',
        'stress_key': 'REF_stress',
        'E0s': str(e0s.value) if isinstance(e0s.value, dict) else e0s.value,
        'work_dir': '.',
        'model_dir': '.',
        'checkpoints_dir': 'checkpoints',
        'results_dir': 'results',
        'log_dir': 'logs',
    }
    for name, value in dataclasses.asdict(hyperparameters).items():
        skipped = files.start_model and name in ARCHITECTURE_KEYS
        if skipped or value is None or (name.startswith(('swa_', 'start_swa')) and not hyperparameters.swa):
            continue
        config[name] = str(list(value)) if name == 'radial_MLP' else value
    config.update(
        loss=loss,
        error_table='PerAtomRMSEstressvirials' if loss in ('stress', 'huber', 'universal') else 'PerAtomRMSE',
        save_cpu=True,
        plot=False,
        pin_memory=hyperparameters.device != 'cpu',
        restart_latest=restart_latest,
    )
    if files.start_model:
        config.update(foundation_model=files.start_model, multiheads_finetuning=files.replay is not None)
    if files.replay:
        config.update(pt_train_file=files.replay, force_mh_ft_lr=True)
    return config


def config_yaml(config: Mapping[str, Any]) -> str:
    """Return ``config`` as the YAML text ``mace_run_train --config`` reads."""
    return yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=False)
