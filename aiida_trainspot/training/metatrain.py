"""metatrain training inputs: the hyperparameter schema, the checks of a training set and the ``options.yaml``.

``mtt train`` (metatrain 2026.4) trains PET or SOAP-BPNN from an options file: the architecture with its ``model``
and ``training`` hyperparameters, the seed, the precision, and the training, validation and test sets with their
targets. :class:`MetatrainHyperparameters` holds only what a user sets; every other value is metatrain's own default
for the architecture, and the names are checked against those defaults (and the values by metatrain's own schema),
so an unknown or ill-typed key fails when the calculation is submitted. That check imports metatrain (and torch),
inside the function that needs it. No AiiDA here:
:class:`~aiida_trainspot.calculations.metatrain.MetatrainCalculation` uses these functions to check its inputs and
write the files.
"""

from __future__ import annotations

import copy
import difflib
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml

from ..dataset import METATRAIN_KEYS, FrameBatch
from ..dataset.frame import SPLITS

ARCHITECTURES = ('pet', 'soap_bpnn')
"""The metatrain architectures we train: PET and SOAP-BPNN."""
DEFAULT_ARCHITECTURE = 'pet'
"""PET, the metatrain architecture of AiiDA-TrainsPot's examples and of the PET-MAD foundation model."""
PRECISIONS = (32, 64)
"""``base_precision`` values a model can be stored with (``float32``, ``float64``)."""
FINETUNE_ARCHITECTURES = ('pet',)
"""Architectures that metatrain fine-tunes from a foundation checkpoint (``training.finetune``)."""
SET_BY_CALCULATION = {
    ('training', 'log_interval'): 'every epoch is logged, so that `metrics` has one row per epoch',
    ('training', 'finetune', 'read_from'): 'give the foundation model as the `foundation_model` input',
}
"""Hyperparameters the calculation sets itself, with the reason; a user setting one gets that reason back."""
TRAINING_SPLITS = SPLITS[1:]
"""The split tags read into metatrain's training, validation and test sets."""
SPLIT_SECTIONS = {'train': 'training_set', 'valid': 'validation_set', 'test': 'test_set'}
"""The options section of each split tag."""
FOUNDATION_FILENAME = 'foundation.ckpt'
"""The foundation checkpoint in the working directory of a fine-tuning run."""
TOP_LEVEL_KEYS = ('architecture', 'base_precision', 'device', 'model', 'training')


@dataclass(frozen=True)
class MetatrainHyperparameters:
    """What a user sets for ``mtt train``; build it with :func:`validate_hyperparameters`.

    ``model`` and ``training`` are nested overrides of metatrain's hyperparameters of ``architecture`` (see its
    documentation: e.g. ``model.soap.cutoff.radius`` for SOAP-BPNN, ``model.cutoff`` and ``model.d_pet`` for PET,
    ``training.num_epochs``, ``training.batch_size``, ``training.learning_rate``, ``training.loss`` for both).
    ``base_precision`` (32 or 64) and ``device`` (``cpu``, ``cuda``) are metatrain's defaults when ``None``.
    """

    architecture: str = DEFAULT_ARCHITECTURE
    base_precision: int | None = None
    device: str | None = None
    model: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)


@functools.cache
def _default_hypers(architecture: str, base_precision: int) -> dict[str, Any]:
    """Return metatrain's default hyperparameters of ``architecture`` (imports metatrain and torch)."""
    from metatrain.utils.architectures import get_default_hypers

    return get_default_hypers(architecture, base_precision=base_precision)


def default_hypers(architecture: str, base_precision: int | None = None) -> dict[str, Any]:
    """Return a copy of metatrain's default ``model`` and ``training`` hyperparameters of ``architecture``."""
    return copy.deepcopy(_default_hypers(architecture, base_precision or PRECISIONS[0]))


def _check_top_level(values: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the first top-level key of ``values`` that is unknown or of the wrong type."""
    for key in values:
        if key not in TOP_LEVEL_KEYS:
            hint = ' (give it as the `seed` input)' if key == 'seed' else ''
            raise ValueError(f'unknown hyperparameter `{key}`{hint}; known: {", ".join(TOP_LEVEL_KEYS)}')
    if values.get('architecture', DEFAULT_ARCHITECTURE) not in ARCHITECTURES:
        raise ValueError(f'`architecture` must be one of {list(ARCHITECTURES)}, got {values["architecture"]!r}')
    if values.get('base_precision') not in (None, *PRECISIONS):
        raise ValueError(f'`base_precision` must be one of {list(PRECISIONS)}, got {values["base_precision"]!r}')
    if not isinstance(values.get('device', ''), str):
        raise ValueError(f'`device` must be a string such as `cpu` or `cuda`, got {values["device"]!r}')
    for key in ('model', 'training'):
        if not isinstance(values.get(key, {}), Mapping):
            raise ValueError(f'`{key}` must be a mapping of metatrain hyperparameters, got {values[key]!r}')


def _unknown_key(given: Mapping[str, Any], defaults: Mapping[str, Any], path: tuple[str, ...]) -> str | None:
    """Return a message naming the first key of ``given`` absent from ``defaults``, recursing into nested sections.

    A section whose default is empty (``heads``, ``loss``, ``atomic_baseline``...) takes keys of the user's choosing.
    """
    for key, value in given.items():
        dotted = '.'.join((*path, str(key)))
        if key not in defaults:
            close = difflib.get_close_matches(str(key), [str(name) for name in defaults], n=1)
            hint = f'; did you mean `{".".join((*path, close[0]))}`?' if close else ''
            return f'unknown hyperparameter `{dotted}`{hint}'
        if (*path, key) in SET_BY_CALCULATION:
            return f'`{dotted}` is set by the calculation: {SET_BY_CALCULATION[(*path, key)]}'
        default = defaults[key]
        if isinstance(value, Mapping) and isinstance(default, Mapping) and default:
            message = _unknown_key(value, default, (*path, str(key)))
            if message:
                return message
    return None


def _merged(defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``defaults`` updated recursively with ``overrides`` (new dicts; neither argument is changed)."""
    merged = copy.deepcopy(dict(defaults))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _check_with_metatrain(architecture: str, options: dict[str, Any]) -> None:
    """Raise ``ValueError`` with the first complaint of metatrain's own schema about the merged ``options``."""
    from metatrain.utils.architectures import check_architecture_options
    from metatrain.utils.pydantic import MetatrainValidationError

    try:
        check_architecture_options(name=architecture, options=options)
    except MetatrainValidationError as exception:
        complaints = [(_key_path(options, error['loc']), error) for error in exception.errors]
        path, error = max(complaints, key=lambda item: _specificity(*item))
        raise ValueError(f'`{path}`: {error["msg"]}, got {error["input"]!r}') from None


def _specificity(path: str, error: Mapping[str, Any]) -> tuple[bool, bool, int]:
    """Return how telling a pydantic ``error`` at ``path`` is: a value the user gave, then the deepest one."""
    ours = tuple(path.split('.')) in SET_BY_CALCULATION
    return error['type'] != 'missing', not ours, path.count('.')


def _key_path(options: Mapping[str, Any], location: Iterable[Any]) -> str:
    """Return the dotted keys of ``options`` along a pydantic error ``location`` (type names in it are skipped)."""
    keys, current = [], options
    for item in location:
        if isinstance(current, Mapping) and item in current:
            keys.append(str(item))
            current = current[item]
    return '.'.join(keys)


def parse_hyperparameters(values: Mapping[str, Any] | None = None) -> MetatrainHyperparameters:
    """Return the hyperparameters in ``values``, checking only the top-level keys (no metatrain import)."""
    values = dict(values or {})
    _check_top_level(values)
    return MetatrainHyperparameters(**{key: copy.deepcopy(value) for key, value in values.items() if value is not None})


def validate_hyperparameters(
    values: Mapping[str, Any] | None = None, finetune: bool = False
) -> MetatrainHyperparameters:
    """Return the hyperparameters in ``values``; raise ``ValueError`` naming a key metatrain would reject.

    Names are checked against metatrain's defaults of the architecture, then the merged hyperparameters against
    metatrain's own schema (types, allowed values), as for a fine-tuning run if ``finetune``. Imports metatrain.
    """
    hyperparameters = parse_hyperparameters(values)
    defaults = default_hypers(hyperparameters.architecture, hyperparameters.base_precision)
    overrides = {'model': hyperparameters.model, 'training': hyperparameters.training}
    message = _unknown_key(overrides, {key: defaults[key] for key in overrides}, ())
    if message:
        raise ValueError(f'{message} (architecture `{hyperparameters.architecture}`)')
    if finetune:
        overrides['training'] = _merged(overrides['training'], {'finetune': {'read_from': FOUNDATION_FILENAME}})
    _check_with_metatrain(hyperparameters.architecture, _merged(defaults, overrides))
    return hyperparameters


@dataclass
class SplitCensus:
    """Labelled frames and those with a stress, per split tag, of the frames metatrain would read."""

    labelled: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TRAINING_SPLITS, 0))
    with_stress: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TRAINING_SPLITS, 0))

    def splits(self) -> list[str]:
        """Return the split tags that have labelled frames, in the order train, valid, test."""
        return [split for split in TRAINING_SPLITS if self.labelled[split]]

    def trains_stress(self) -> bool:
        """Return whether every set that is written has a frame with a stress, which metatrain needs to fit it.

        metatrain skips a NaN stress within a set, but a set with a stress target and no stress at all stops it
        with a division by zero; then no set gets the stress target.
        """
        return all(self.with_stress[split] for split in self.splits())


def census_of_splits(batches: Iterable[FrameBatch]) -> SplitCensus:
    """Return the labelled frames and those with a stress, per split tag, in ``batches``."""
    census = SplitCensus()
    for batch in batches:
        labelled = batch.labelled
        has_stress = ~np.isnan(batch.stress).any(axis=(1, 2))
        for split in TRAINING_SPLITS:
            in_split = (batch.split == SPLITS.index(split)) & labelled
            census.labelled[split] += int(in_split.sum())
            census.with_stress[split] += int((in_split & has_stress).sum())
    return census


def _dataset_section(filename: str, stress: bool) -> dict[str, Any]:
    """Return the options of one set: the extended-XYZ file and its energy, forces and (maybe) stress keys."""
    energy: dict[str, Any] = {
        'key': METATRAIN_KEYS.energy,
        'unit': 'eV',
        'forces': {'key': METATRAIN_KEYS.forces},
        'stress': {'key': METATRAIN_KEYS.stress} if stress else False,
    }
    return {
        'systems': {'read_from': filename, 'reader': 'ase', 'length_unit': 'angstrom'},
        'targets': {'energy': energy},
    }


def render_options(
    hyperparameters: MetatrainHyperparameters,
    *,
    seed: int,
    files: Mapping[str, str],
    stress: bool,
    epochs: int | None = None,
    finetune_from: str | None = None,
) -> dict[str, Any]:
    """Return the options of ``mtt train``, in the order they are written to ``options.yaml``.

    ``files`` maps the split tags that have frames (``train``, ``valid``, optionally ``test``) to their files.
    ``epochs`` overrides ``training.num_epochs`` (a run that continues from a checkpoint counts the epochs the
    checkpoint has done). ``finetune_from`` is the foundation checkpoint PET fine-tunes from.
    """
    training = copy.deepcopy(hyperparameters.training)
    training['log_interval'] = 1
    if epochs is not None:
        training['num_epochs'] = epochs
    if finetune_from is not None:
        training['finetune'] = {**training.get('finetune', {}), 'read_from': finetune_from}
    options: dict[str, Any] = {'seed': seed}
    if hyperparameters.base_precision is not None:
        options['base_precision'] = hyperparameters.base_precision
    if hyperparameters.device is not None:
        options['device'] = hyperparameters.device
    options['architecture'] = {
        'name': hyperparameters.architecture,
        **({'model': copy.deepcopy(hyperparameters.model)} if hyperparameters.model else {}),
        'training': training,
    }
    for split, section in SPLIT_SECTIONS.items():
        options[section] = _dataset_section(files[split], stress) if split in files else 0.0
    return options


def options_yaml(options: Mapping[str, Any]) -> str:
    """Return ``options`` as the YAML text ``mtt train`` reads."""
    return yaml.safe_dump(dict(options), sort_keys=False, default_flow_style=False)


def model_cutoff(architecture: str, model_hypers: Mapping[str, Any]) -> float:
    """Return the cutoff radius (Å) in the resolved ``model`` hyperparameters of ``architecture``."""
    if architecture == 'soap_bpnn':
        return float(model_hypers['soap']['cutoff']['radius'])
    return float(model_hypers['cutoff'])
