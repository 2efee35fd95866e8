"""The committee of a CalcJob: its ``models`` namespace in member order, and the files the runner gets of it."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..data import PotentialData

MEMBER_NAME = re.compile(r'member_(\d+)')
"""Port names of the ``models`` namespace: ``member_<k>``."""

MODELS_FOLDER = 'models'
"""Folder of the job in which each member's files go, under its port name."""


def ordered_members(models: Mapping[str, PotentialData]) -> list[tuple[str, PotentialData]]:
    """Return the ``(name, model)`` pairs of the ``models`` namespace, ordered by member index."""
    return sorted(models.items(), key=lambda item: int(MEMBER_NAME.fullmatch(item[0]).group(1)))


def model_files(models: Mapping[str, PotentialData]) -> tuple[list[dict], list[tuple[str, str, str]]]:
    """Return the runner's model specs and the ``local_copy_list`` entries of the model files, in member order.

    Member ``member_<k>`` goes to ``models/member_<k>/``: its model file, and its ``extensions/`` folder if it has one
    (see :func:`aiida_trainspot.runners.models.load_calculator` for the spec).
    """
    specs, copies = [], []
    for name, model in ordered_members(models):
        folder = f'{MODELS_FOLDER}/{name}'
        extensions = None
        if model.base.attributes.get('has_extensions', False):
            extensions = f'{folder}/{PotentialData.EXTENSIONS_FOLDER}'
            copies.append((model.uuid, PotentialData.EXTENSIONS_FOLDER, extensions))
        copies.append((model.uuid, f'{PotentialData.MODEL_FOLDER}/{model.filename}', f'{folder}/{model.filename}'))
        specs.append(
            {
                'architecture': model.architecture,
                'path': f'{folder}/{model.filename}',
                'extensions': extensions,
                'dtype': model.base.attributes.get('dtype') or 'float64',
            }
        )
    return specs, copies
