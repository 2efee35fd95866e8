"""The inputs of ``TrainsPotWorkChain``: their validation at submission, and the builder from a protocol.

Every stage's own validator is asked about the stage's inputs before anything runs, so a wrong code, protocol,
pseudopotential family or MD setting is named at submission with the stage it belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiida import orm
from aiida.engine.processes.ports import PortNamespace

from ..calculations import evaluate
from ..campaign.settings import full_settings, parallel_loop_settings, settings_error
from ..data import PESData
from ..pax.policy import SEGMENT_FIELDS
from ..pax.settings import full_settings as full_parallel_settings
from . import committee, exploration, labelling
from .augmentation import DatasetAugmentationWorkChain
from .exploration import ExplorationWorkChain
from .throttle import dft_workers_error

TRAINING_PLUGINS = {'trainspot.mace_train': 'mace', 'trainspot.metatrain': 'metatrain'}
"""Calculation plugin of a training code → the committee's engine namespace."""


def validate_active_learning(value: orm.Dict, _) -> str | None:
    """Return a message naming the first invalid field of ``active_learning``."""
    return settings_error(value.get_dict())


def start_error(inputs) -> str | None:
    """Return a message if the structures, the given dataset or the given committee cannot start a campaign."""
    structures = inputs['structures']
    if len(structures) == 0:
        return '`structures` has no frames: give at least one starting structure'
    dataset = inputs.get('dataset')
    if dataset is not None and dataset.base.attributes.get('num_labelled', 0) < 2:
        return '`dataset` must hold at least 2 labelled frames to start from'
    members = inputs.get('committee', {})
    if members:
        message = evaluate.validate_models(members, None)
        if message:
            return f'`committee`: {message.removeprefix("`models`: ")}'
        known = set(next(iter(members.values())).species)
        missing = sorted(set(structures.species) - known)
        if missing:
            return f'`committee` knows {sorted(known)} but `structures` also hold {missing}'
    return None


def _budget_error(inputs, settings: dict[str, Any]) -> str | None:
    """Return a message if the label budget is below what the campaign must label first."""
    budget = settings['label_budget']
    if budget is None:
        return None
    if 'dataset' in inputs:
        first, what = len(inputs['dataset']), 'the given `dataset`'
    elif 'augmentation' not in inputs:
        first, what = len(inputs['structures']), 'the `structures` to label first'
    else:
        return None  # known after the augmentation: checked before the first labelling
    if budget < first:
        return f'`active_learning.label_budget` ({budget}) is below the {first} frames of {what}'
    return None


def training_error(inputs) -> str | None:
    """Return a message if the committee stage is invalid or a training code runs the wrong plugin."""
    stage = inputs['training']
    message = committee.validate_inputs(stage, None)
    if message:
        return f'`training`: {message}'
    for plugin, engine in TRAINING_PLUGINS.items():
        code = stage.get(engine, {}).get('train', {}).get('code')
        if code is not None and code.default_calc_job_plugin not in (None, plugin):
            return (
                f'`training.{engine}.train.code` {code.full_label} runs `{code.default_calc_job_plugin}`, '
                f'expected `{plugin}`'
            )
    return None


def _stage_errors(inputs) -> str | None:
    """Return the first message of the labelling, exploration and evaluation validators, prefixed by the stage."""
    num_members = inputs['training']['num_members'].value if 'num_members' in inputs['training'] else 4
    checks = (
        ('labelling', lambda stage: labelling.validate_inputs({**stage, 'dataset': inputs['structures']}, None)),
        ('exploration', lambda stage: exploration.stage_error(stage, num_members)),
        ('evaluation', lambda stage: evaluate.validate_inputs(stage, None)),
    )
    for namespace, check in checks:
        message = check(inputs[namespace])
        if message:
            return f'`{namespace}`: {message}'
    return None


def validate_inputs(inputs, _) -> str | None:
    """Return a message naming the first invalid input of the campaign, checked before anything runs."""
    if settings_error(inputs['active_learning'].get_dict()):
        return None  # the port validator names it
    settings = full_settings(inputs['active_learning'].get_dict())
    return (
        start_error(inputs)
        or _budget_error(inputs, settings)
        or training_error(inputs)
        or _stage_errors(inputs)
        or _parallel_error(inputs, settings)
    )


def parallel_md_parameters(exploration_inputs) -> dict[str, Any]:
    """Return the MD parameters of the parallel loop's segments: the exploration's, at its highest temperature."""
    parameters = exploration_inputs['parameters'].get_dict() if 'parameters' in exploration_inputs else {}
    kept = {key: value for key, value in parameters.items() if key not in SEGMENT_FIELDS}
    temperatures = exploration_inputs['temperatures'].get_list() if 'temperatures' in exploration_inputs else []
    return {**kept, **({'temperature': max(temperatures)} if temperatures else {})}


def _parallel_error(inputs, settings: dict[str, Any]) -> str | None:
    """Return a message if the parallel mode cannot run with the exploration or DFT inputs given."""
    if settings['mode'] != 'parallel':
        return None
    stage = inputs['exploration']
    if stage['driver'].value != 'ase':
        return '`active_learning.mode: parallel` runs MD segments with `trainspot-md`: use the `ase` exploration driver'
    loop = parallel_loop_settings(settings, 0)
    return dft_workers_error(full_parallel_settings(loop), inputs['labelling'], 'active_learning.parallel')


def _pruned(builder, exclude: tuple[str, ...]) -> dict[str, Any]:
    """Return the inputs set on ``builder`` without the top-level ports in ``exclude``."""
    return {key: value for key, value in builder._inputs(prune=True).items() if key not in exclude}


def as_port_values(values: Mapping[str, Any], namespace: PortNamespace, where: str) -> dict[str, Any]:
    """Return plain ``values`` (from YAML) as the inputs of ``namespace``: base types become nodes, metadata stays.

    Raise ``ValueError`` naming ``where.key`` for a key the namespace does not have: an override is never dropped.
    """
    converted: dict[str, Any] = {}
    for key, value in values.items():
        if key not in namespace:
            raise ValueError(f'`{where}.{key}` is not an input; `{where}` has {sorted(namespace)}')
        port = namespace[key]
        if getattr(port, 'is_metadata', False) or getattr(port, 'non_db', False) or isinstance(value, orm.Node):
            converted[key] = value
        elif isinstance(port, PortNamespace) and isinstance(value, Mapping):
            converted[key] = as_port_values(value, port, f'{where}.{key}')
        else:
            converted[key] = orm.to_aiida_type(value)
    return converted


def campaign_builder(
    process,
    structures: PESData,
    codes: dict[str, orm.AbstractCode],
    protocol: str | None = None,
    overrides: dict | None = None,
    pseudo_family: str | None = None,
    calculator: dict | None = None,
    augment: bool = True,
):
    """Return a builder of ``process`` (``TrainsPotWorkChain``) whose every stage takes ``protocol``.

    :param codes: ``dft``, ``training``, ``md`` and ``evaluate`` codes.
    :param overrides: replaces protocol inputs; ``augmentation`` and ``exploration`` go to those stages' protocol
        builders; ``labelling`` holds inputs of the labelling stage (e.g. ``overrides``, ``options``).
    :param pseudo_family: the pseudopotential family label (pw.x); ``calculator``: the reference calculator spec.
    :param augment: whether to augment the structures first.
    """
    overrides = dict(overrides or {})
    stages = ('augmentation', 'exploration', 'labelling', 'evaluation')
    stage_overrides = {name: overrides.pop(name, None) or {} for name in stages}
    inputs = process.get_protocol_inputs(protocol, overrides)
    ports = process.spec().inputs
    name = protocol or process.get_default_protocol()
    builder = process.get_builder()
    builder.structures = structures
    builder.active_learning = orm.Dict(inputs['active_learning'])
    if augment:
        augmentation = DatasetAugmentationWorkChain.get_builder_from_protocol(
            structures, protocol=name, overrides=stage_overrides['augmentation']
        )
        builder.augmentation = _pruned(augmentation, ('structures',))
    builder.labelling = labelling_inputs(codes['dft'], name, pseudo_family, calculator)
    builder.labelling._merge(as_port_values(stage_overrides['labelling'], ports['labelling'], 'labelling'))
    set_training_inputs(builder, codes['training'], inputs['training'], ports['training'])
    protocol_keys = ('temperatures', 'pressures', 'parameters', 'driver', 'max_concurrent')
    exploration = stage_overrides['exploration']
    explore = ExplorationWorkChain.get_builder_from_protocol(
        structures,
        codes['md'],
        {},
        protocol=name,
        overrides={key: value for key, value in exploration.items() if key in protocol_keys},
    )
    builder.exploration = _pruned(explore, ('structures', 'iteration', 'seed'))
    others = {key: value for key, value in exploration.items() if key not in protocol_keys}
    builder.exploration._merge(as_port_values(others, ports['exploration'], 'exploration'))
    builder.evaluation.code = codes['evaluate']
    builder.evaluation._merge(as_port_values(stage_overrides['evaluation'], ports['evaluation'], 'evaluation'))
    return builder


def labelling_inputs(code, protocol: str, pseudo_family, calculator) -> dict[str, Any]:
    """Return the inputs of the labelling stage before the overrides."""
    stage: dict[str, Any] = {'code': code, 'protocol': orm.Str(protocol)}
    if pseudo_family is not None:
        stage['pseudo_family'] = orm.Str(pseudo_family)
    if calculator is not None:
        stage['calculator'] = orm.Dict(calculator)
    return stage


TRAINING_PROTOCOL_KEYS = ('num_members', 'mace_hyperparameters', 'metatrain_hyperparameters')


def set_training_inputs(builder, code: orm.AbstractCode, training: dict[str, Any], port: PortNamespace) -> None:
    """Set the committee stage of ``builder``: ``training`` protocol values, trained by ``code``.

    ``num_members`` and ``<engine>_hyperparameters`` are the protocol's own keys; every other key is an input of the
    committee work chain (``subset_fraction``, ``mace.max_iterations``...) and becomes a node.
    """
    engine = TRAINING_PLUGINS.get(code.default_calc_job_plugin, 'mace')
    hyperparameters = orm.Dict(training.get(f'{engine}_hyperparameters', {}))
    builder.training = {
        'num_members': orm.Int(training['num_members']),
        engine: {'train': {'code': code, 'hyperparameters': hyperparameters}},
    }
    others = {key: value for key, value in training.items() if key not in TRAINING_PROTOCOL_KEYS}
    builder.training._merge(as_port_values(others, port, 'training'))


"""Keys of the protocol's ``training``; every other key is an input of the committee stage."""
