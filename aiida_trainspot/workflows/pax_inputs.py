"""Validation of the inputs of ``ParallelActiveLearningWorkChain``, at submission, before anything runs."""

from __future__ import annotations

from aiida import orm

from ..calculations.md import validate_structures
from ..pax.policy import SEGMENT_FIELDS, new_threshold_state, segment_spec
from ..pax.settings import full_settings, settings_error
from ..runners.md_spec import md_spec_error
from .campaign_inputs import start_error
from .throttle import dft_workers_error


def validate_active_learning(value: orm.Dict, _) -> str | None:
    """Return a message naming the invalid field of the parallel settings."""
    message = settings_error(value.get_dict())
    return f'`active_learning`: {message}' if message else None


def md_error(settings: dict, inputs) -> str | None:
    """Return a message if the MD parameters set what segments set, or do not make a valid segment."""
    md = inputs.get('md', {})
    parameters = md['parameters'].get_dict() if 'parameters' in md else {}
    owned = sorted(set(parameters) & set(SEGMENT_FIELDS))
    if owned:
        return f'`md.parameters` must not set {owned}: every segment sets them from `active_learning`'
    spec = segment_spec(parameters, settings, new_threshold_state(settings), 0, settings['seed'], 0)
    drive = md['drive'].value if 'drive' in md else 'mean'
    num_models = len(inputs.get('committee', {}))
    pbcs = [frame.pbc.tolist() for frame in inputs['structures'].iter_frames()]
    message = md_spec_error({**spec, 'drive': 'mean' if drive == 'mean' else int(drive[7:])}, num_models, pbcs)
    return f'`md.parameters`: {message}' if message else None


def validate_inputs(inputs, _) -> str | None:
    """Return a message naming the first invalid input: settings, committee, dataset, MD, DFT workers."""
    try:
        settings = full_settings(inputs['active_learning'].get_dict())
    except ValueError:
        return None  # the port validator says why
    if len(inputs.get('committee', {})) < 2:
        return f'`committee` needs at least 2 members to measure an uncertainty, got {len(inputs.get("committee", {}))}'
    message = start_error(inputs) or validate_structures(inputs['structures'], None)
    if message:
        return message
    return md_error(settings, inputs) or dft_workers_error(settings, inputs.get('labelling', {}))
