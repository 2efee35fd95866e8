"""The campaign file of ``aiida-trainspot launch``: its fields, defaults and validation (pure, no AiiDA).

A YAML mapping; every field but ``structures`` is optional::

    protocol: fast                   # fast | balanced | stringent: every stage's protocol
    structures:                      # files ASE reads (paths relative to the campaign file); every image is used
      - diamond.cif
      - graphene.xyz
    codes:                           # code labels (`verdi code list`), as `aiida-trainspot setup` makes them
      dft: pw@localhost              # pw.x, FHI-aims (trainspot.aims) or the reference runner (trainspot-ase-label)
      training: mace_run_train@localhost   # or mtt@localhost (metatrain)
      md: trainspot-md@localhost
      evaluate: trainspot-evaluate@localhost
    pseudo_family: trainspot/debian-pbe    # pw.x only
    calculator: null                 # the reference calculator of the reference runner, e.g. {name: emt}
    augment: true                    # augment the structures first
    dataset: null                    # pk or UUID of a labelled PESData to start from (no augmentation or labelling)
    committee: null                  # pk or UUID of a finished campaign whose committee to start from
    overrides: {}                    # inputs replacing the protocol's, nested like the work chain's inputs
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

PROTOCOLS = ('fast', 'balanced', 'stringent')
CODE_ROLES = ('dft', 'training', 'md', 'evaluate')
DEFAULT_CODES = {
    'dft': 'pw@localhost',
    'training': 'mace_run_train@localhost',
    'md': 'trainspot-md@localhost',
    'evaluate': 'trainspot-evaluate@localhost',
}
DEFAULTS: dict[str, Any] = {
    'protocol': 'fast',
    'structures': None,
    'codes': {},
    'pseudo_family': 'trainspot/debian-pbe',
    'calculator': None,
    'augment': True,
    'dataset': None,
    'committee': None,
    'overrides': {},
}


def _reference_error(name: str, value: Any) -> str | None:
    """Return a message unless ``value`` is ``None``, a pk or a UUID string."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return None
    if isinstance(value, str) and len(value) >= 8:
        return None
    return f'`{name}` must be a pk or a UUID, got {value!r}'


def _structures_error(structures: Any, folder: Path) -> str | None:
    """Return a message unless ``structures`` lists existing files."""
    if not isinstance(structures, list) or not structures:
        return '`structures` must list at least one structure file'
    for entry in structures:
        if not isinstance(entry, str) or not (folder / entry).is_file():
            return f'`structures`: no file {entry!r} (paths are relative to the campaign file)'
    return None


def _codes_error(codes: Any) -> str | None:
    """Return a message unless ``codes`` maps known roles to code labels."""
    if not isinstance(codes, Mapping):
        return f'`codes` must map {list(CODE_ROLES)} to code labels, got {codes!r}'
    unknown = sorted(set(codes) - set(CODE_ROLES))
    if unknown:
        return f'`codes` has unknown roles {unknown}: use {list(CODE_ROLES)}'
    for role, label in codes.items():
        if not isinstance(label, str) or not label:
            return f'`codes.{role}` must be a code label such as {DEFAULT_CODES[role]!r}, got {label!r}'
    return None


def campaign_file_error(campaign: Any, folder: Path) -> str | None:
    """Return a message naming the first invalid field of the campaign mapping (read from ``folder``), or ``None``."""
    if not isinstance(campaign, Mapping):
        return f'the campaign file must hold a mapping of fields, got {type(campaign).__name__}'
    unknown = sorted(set(campaign) - set(DEFAULTS))
    if unknown:
        return f'unknown fields {unknown}; known: {sorted(DEFAULTS)}'
    full = {**DEFAULTS, **campaign}
    if full['protocol'] not in PROTOCOLS:
        return f'`protocol` must be one of {list(PROTOCOLS)}, got {full["protocol"]!r}'
    message = _structures_error(full['structures'], folder) or _codes_error(full['codes'])
    if message:
        return message
    for name in ('augment',):
        if not isinstance(full[name], bool):
            return f'`{name}` must be true or false, got {full[name]!r}'
    for name in ('calculator', 'overrides'):
        if full[name] is not None and not isinstance(full[name], Mapping):
            return f'`{name}` must be a mapping, got {full[name]!r}'
    return _reference_error('dataset', full['dataset']) or _reference_error('committee', full['committee'])


def read_campaign(campaign: Any, folder: Path) -> dict[str, Any]:
    """Return the campaign with defaults filled in and structure paths made absolute, or raise ``ValueError``."""
    message = campaign_file_error(campaign, folder)
    if message:
        raise ValueError(message)
    full = {**DEFAULTS, **campaign}
    full['codes'] = {**DEFAULT_CODES, **full['codes']}
    full['structures'] = [str((folder / entry).resolve()) for entry in full['structures']]
    return full
