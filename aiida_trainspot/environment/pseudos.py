"""The pseudopotential family built from Debian's Quantum ESPRESSO pseudopotentials."""

from __future__ import annotations

import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from aiida.common.exceptions import NotExistent
from aiida.orm import QueryBuilder
from aiida_pseudo.data.pseudo import UpfData
from aiida_pseudo.groups.family import CutoffsPseudoPotentialFamily


def load_family_definition() -> dict[str, Any]:
    """Return the family definition shipped with the package (``environment/pseudos.yaml``)."""
    return yaml.safe_load(resources.files(__package__).joinpath('pseudos.yaml').read_text(encoding='utf-8'))


def ensure_pseudo_family(source: str | Path | None = None) -> tuple[CutoffsPseudoPotentialFamily, bool]:
    """Return the family of :func:`load_family_definition` and whether it was created now.

    An existing family of that label is reused as it is. ``source`` overrides the folder of UPF files.
    """
    definition = load_family_definition()
    existing = QueryBuilder().append(CutoffsPseudoPotentialFamily, filters={'label': definition['label']}).first()
    if existing:
        return existing[0], False
    folder = Path(source or definition['source'])
    elements = definition['elements']
    missing = [entry['file'] for entry in elements.values() if not (folder / entry['file']).is_file()]
    if missing:
        raise NotExistent(f'{folder} lacks {missing}: install the Debian package `quantum-espresso-data`')
    with tempfile.TemporaryDirectory() as staging:
        for entry in elements.values():
            shutil.copy(folder / entry['file'], staging)
        family = CutoffsPseudoPotentialFamily.create_from_folder(
            Path(staging), definition['label'], description=definition['description'], pseudo_type=UpfData
        )
    cutoffs = {
        symbol: {'cutoff_wfc': entry['ecutwfc'], 'cutoff_rho': entry['ecutrho']} for symbol, entry in elements.items()
    }
    family.set_cutoffs(cutoffs, definition['stringency'], unit='Ry')
    return family, True
