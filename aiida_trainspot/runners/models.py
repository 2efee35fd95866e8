"""Trained models as ASE calculators: one member, or a committee whose mean drives and whose spread is measured.

A model spec is the JSON object a CalcJob writes for each model it copies into the job folder::

    {"architecture": "mace", "path": "models/member_0/model.model", "extensions": null, "dtype": "float64"}

``architecture`` is ``mace`` (a MACE ``.model`` file) or ``soap_bpnn``/``pet`` (an exported metatomic ``model.pt``,
with its ``extensions`` folder if it has one). torch, MACE and metatomic are imported only when a model is loaded, so
that importing this module (and the entry points that import it) stays light.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress

from ..uncertainty.metrics import atomic_force_deviation

__all__ = (
    'ARCHITECTURES',
    'CommitteeCalculator',
    'load_calculator',
    'load_committee',
    'validate_model_spec',
)

METATOMIC_ARCHITECTURES = ('soap_bpnn', 'pet')
ARCHITECTURES = ('mace', *METATOMIC_ARCHITECTURES)
DTYPES = ('float32', 'float64')
AUTOGRAD_EXTENSIONS = ('sphericart.torch',)
"""TorchScript extensions whose Python package registers the autograd of their ops (sphericart-torch 2).

A model loaded with only the bare library of such an extension (its ``extensions`` folder) gets the right energy but
forces without the gradient of those ops (SOAP-BPNN), so the package is imported first when it is installed.
"""


def validate_model_spec(spec: Any) -> dict[str, Any]:
    """Return ``spec`` with its defaults filled in, or raise ``ValueError`` naming the invalid field."""
    if not isinstance(spec, dict):
        raise ValueError(f'a model spec must be a JSON object, got {type(spec).__name__}')
    unknown = sorted(set(spec) - {'architecture', 'path', 'extensions', 'dtype'})
    if unknown:
        raise ValueError(f'unknown model spec fields {unknown}')
    if spec.get('architecture') not in ARCHITECTURES:
        raise ValueError(f'`architecture` must be one of {ARCHITECTURES}, got {spec.get("architecture")!r}')
    if not isinstance(spec.get('path'), str) or not spec['path']:
        raise ValueError(f'`path` must be the path of the model file, got {spec.get("path")!r}')
    if spec.get('extensions') is not None and not isinstance(spec['extensions'], str):
        raise ValueError(f'`extensions` must be a folder path or null, got {spec["extensions"]!r}')
    if spec.get('dtype', 'float64') not in DTYPES:
        raise ValueError(f'`dtype` must be one of {DTYPES}, got {spec.get("dtype")!r}')
    return {'extensions': None, 'dtype': 'float64', **spec}


def load_calculator(spec: dict[str, Any]) -> Calculator:
    """Return the ASE calculator of the model that ``spec`` describes, on the CPU.

    Raise ``ValueError`` for an invalid spec, ``FileNotFoundError`` for an ``extensions`` folder that is not there,
    and whatever the model's library raises for a file it cannot load.
    """
    spec = validate_model_spec(spec)
    if spec['architecture'] == 'mace':
        from mace.calculators import MACECalculator

        return MACECalculator(model_paths=spec['path'], device='cpu', default_dtype=spec['dtype'])
    if spec['extensions'] is not None and not Path(spec['extensions']).is_dir():
        raise FileNotFoundError(f'the `extensions` folder {spec["extensions"]!r} of the model is not there')
    for module in AUTOGRAD_EXTENSIONS:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    try:
        from metatomic_ase import MetatomicCalculator
    except ImportError:  # metatomic-torch before the calculator moved to its own package
        from metatomic.torch.ase_calculator import MetatomicCalculator

    return MetatomicCalculator(spec['path'], extensions_directory=spec['extensions'], device='cpu')


def load_committee(specs: Sequence[dict[str, Any]]) -> list[Calculator]:
    """Return the calculators of the models ``specs`` describes, in order.

    Raise ``ValueError`` if there are none, or naming the member (index and path) that cannot be loaded, and why.
    """
    if not specs:
        raise ValueError('a committee needs at least one model spec')
    calculators = []
    for member, spec in enumerate(specs):
        try:
            calculators.append(load_calculator(spec))
        except Exception as exception:  # whatever the model's library raises for a file it cannot load
            path = spec.get('path') if isinstance(spec, dict) else None
            reason = f'{type(exception).__name__}: {exception}'.replace('\n', ' ')  # one line, as the parser quotes
            raise ValueError(f'cannot load member {member} ({path}): {reason}') from exception
    return calculators


class CommitteeCalculator(Calculator):
    """The mean energy, forces and stress of a committee of calculators, with every member's predictions.

    Besides ``energy``, ``free_energy``, ``forces`` and (cells periodic in some direction, over the cell volume)
    ``stress``, :attr:`results` holds ``committee_energy`` (M,) eV, ``committee_forces`` (M, N, 3) eV/Å,
    ``committee_stress`` (M, 3, 3) eV/Å³ (cells periodic in three directions only) and ``force_disagreement`` (seed 000
    Eq. 1, eV/Å). With ``drive`` set to a member index, that member's predictions are returned instead of the mean
    (the spread is still computed).
    """

    implemented_properties = ('energy', 'free_energy', 'forces', 'stress')

    def __init__(self, members: Sequence[Calculator], drive: int | None = None, **kwargs: Any) -> None:
        """Wrap ``members``; ``drive`` is ``None`` for the committee mean or the index of the member to return."""
        super().__init__(**kwargs)
        if not members:
            raise ValueError('a committee needs at least one member')
        if drive is not None and not 0 <= drive < len(members):
            raise ValueError(f'`drive` must be a member index in [0, {len(members)}), got {drive}')
        self.members = list(members)
        self.drive = drive

    def calculate(self, atoms: Atoms | None = None, properties=('energy',), system_changes=all_changes) -> None:
        """Evaluate every member on ``atoms`` and store the mean (or the driving member's) and per-member results."""
        super().calculate(atoms, properties, system_changes)
        with_stress = bool(self.atoms.pbc.any()) and self.atoms.cell.volume > 0
        energies, forces, stresses = [], [], []
        for member in self.members:
            copy = self.atoms.copy()
            energies.append(float(member.get_potential_energy(copy)))
            forces.append(np.asarray(member.get_forces(copy), dtype=np.float64))
            if with_stress:
                stresses.append(voigt_6_to_full_3x3_stress(member.get_stress(copy)))
        committee_forces = np.stack(forces)
        pick = (lambda values: values.mean(axis=0)) if self.drive is None else (lambda values: values[self.drive])
        self.results = {
            'committee_energy': np.array(energies),
            'committee_forces': committee_forces,
            'force_disagreement': float(atomic_force_deviation(committee_forces).max()),
            'forces': pick(committee_forces),
        }
        self.results['energy'] = self.results['free_energy'] = float(pick(np.array(energies)))
        if with_stress:  # a slab's stress, over its cell volume with the vacuum, is what a 2D barostat needs
            self.results['stress'] = full_3x3_to_voigt_6_stress(pick(np.stack(stresses)))
        if self.atoms.pbc.all():
            self.results['committee_stress'] = np.stack(stresses)
