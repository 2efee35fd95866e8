"""The inputs of ``InitialDatasetWorkChain``: their validation at submission, the epochs of a round, the builder.

Every stage's own check is asked about its inputs before anything runs, so a general model that misses an element,
a wrong code or MD setting, or parameters that never stop are named at submission with the field they belong to.
"""

from __future__ import annotations

from typing import Any

from aiida import orm
from ase.data import chemical_symbols

from ..campaign.initial_dataset import full_parameters, parameters_error
from ..data import PESData, PotentialData
from . import exploration, labelling
from .campaign_inputs import (
    as_port_values,
    labelling_inputs,
    set_training_inputs,
    training_error,
)
from .committee import EPOCH_KEYS


def validate_parameters(value: orm.Dict, _) -> str | None:
    """Return a message naming the first invalid field of ``parameters``."""
    return parameters_error(value.get_dict())


def _driver(inputs) -> str:
    """Return the MD driver of the sampling."""
    sampling = inputs['sampling']
    return sampling['driver'].value if 'driver' in sampling else 'ase'


def _model_error(inputs) -> str | None:
    """Return a message if the general model misses an element of a structure, or cannot drive the sampling."""
    model = inputs['general_model']
    if isinstance(model, PotentialData):
        known = sorted(model.species)
        for index, frame in enumerate(inputs['structures'].iter_frames()):
            missing = sorted({chemical_symbols[number] for number in frame.numbers.tolist()} - set(known))
            if missing:
                return f'`general_model` knows species {known} but structure {index} has {missing}'
        return None
    if _driver(inputs) != 'lammps' or 'pair_style' not in inputs['sampling'].get('lammps', {}):
        return (
            '`general_model` is a potential file: it needs `sampling.driver` `lammps` and its '
            '`sampling.lammps.pair_style`'
        )
    return None


def _dataset_error(inputs) -> str | None:
    """Return a message if the given dataset holds unlabelled frames or already fills ``max_dataset_size``."""
    dataset = inputs.get('dataset')
    if dataset is None:
        return None
    unlabelled = len(dataset) - dataset.base.attributes.get('num_labelled', 0)
    if len(dataset) == 0 or unlabelled:
        return f'`dataset` must hold labelled frames only: {unlabelled} of its {len(dataset)} frames are not labelled'
    limit = full_parameters(inputs['parameters'].get_dict())['max_dataset_size']
    if limit is not None and len(dataset) >= limit:
        return f'`dataset` holds {len(dataset)} frames already, `parameters.max_dataset_size` is {limit}'
    return None


def _epochs_error(inputs) -> str | None:
    """Return a message if the training hyperparameters set the epochs, which the rounds set."""
    for engine, key in EPOCH_KEYS.items():
        hyperparameters = inputs['training'].get(engine, {}).get('train', {}).get('hyperparameters')
        values: Any = hyperparameters.get_dict() if hyperparameters is not None else {}
        for part in key:
            values = values.get(part) if isinstance(values, dict) else None
        if values is not None:
            return (
                f'`training.{engine}.train.hyperparameters.{".".join(key)}` is set by the rounds: use '
                '`parameters.epochs_per_round` and `parameters.max_epochs`'
            )
    return None


def _stage_error(inputs) -> str | None:
    """Return the first message of the sampling and labelling checks, prefixed by the stage."""
    sampling = {**inputs['sampling'], 'structures': inputs['structures']}
    if _driver(inputs) == 'lammps':
        sampling['lammps'] = {**sampling.get('lammps', {}), 'potential': inputs['general_model']}
    message = exploration.stage_error(sampling, 1)
    if message:
        return f'`sampling`: {message}'
    message = labelling.validate_inputs({**inputs['labelling'], 'dataset': inputs['structures']}, None)
    return f'`labelling`: {message}' if message else None


def validate_inputs(inputs, _) -> str | None:
    """Return a message naming the first invalid input, checked before anything runs."""
    if parameters_error(inputs['parameters'].get_dict()):
        return None  # the port validator names it
    if len(inputs['structures']) == 0:
        return '`structures` has no frames: give at least one starting geometry'
    return (
        _model_error(inputs)
        or _dataset_error(inputs)
        or _epochs_error(inputs)
        or training_error(inputs)
        or _stage_error(inputs)
    )


def idg_builder(
    process,
    structures: PESData,
    general_model: PotentialData | orm.SinglefileData,
    codes: dict[str, orm.AbstractCode],
    protocol: str | None = None,
    overrides: dict | None = None,
    pseudo_family: str | None = None,
    calculator: dict | None = None,
):
    """Return a builder of ``process`` (``InitialDatasetWorkChain``) with the inputs of ``protocol``.

    :param codes: ``dft``, ``training``, and ``md`` (driver ``ase``) or ``lammps`` (driver ``lammps``).
    :param overrides: replace protocol inputs; an unknown key of a stage raises ``ValueError`` naming it.
    """
    inputs = process.get_protocol_inputs(protocol, overrides)
    name = protocol or process.get_default_protocol()
    ports = process.spec().inputs
    builder = process.get_builder()
    builder.structures = structures
    builder.general_model = general_model
    builder.parameters = orm.Dict(inputs['parameters'])
    builder.sampling = as_port_values(inputs['sampling'], ports['sampling'], 'sampling')
    if inputs['sampling'].get('driver', 'ase') == 'lammps':
        if 'lammps' in codes:
            builder.sampling.lammps.code = codes['lammps']
    elif 'md' in codes:
        builder.sampling.md.code = codes['md']
    builder.labelling = labelling_inputs(codes['dft'], name, pseudo_family, calculator)
    builder.labelling._merge(as_port_values(inputs.get('labelling', {}), ports['labelling'], 'labelling'))
    set_training_inputs(builder, codes['training'], inputs['training'], ports['training'])
    return builder
