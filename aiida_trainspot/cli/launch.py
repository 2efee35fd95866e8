"""From a campaign file (read by :mod:`aiida_trainspot.campaign.file`) to the builder of a ``TrainsPotWorkChain``."""

from __future__ import annotations

from typing import Any

from aiida import orm
from ase.io import read

from ..data import PESData
from ..workflows.trainspot import TrainsPotWorkChain


def _code(role: str, label: str) -> orm.AbstractCode:
    """Return the code ``label`` or raise ``ValueError`` naming the role."""
    try:
        return orm.load_code(label)
    except Exception as exception:  # NotExistent, MultipleObjectsError, InputValidationError
        raise ValueError(
            f'`codes.{role}`: no code {label!r} ({exception}); `aiida-trainspot setup` makes them'
        ) from None


def structures_from_files(paths: list[str]) -> PESData:
    """Return every image of the structure files ``paths`` as a stored dataset (origin ``input``)."""
    images = []
    for path in paths:
        try:
            read_images = read(path, index=':')
        except Exception as exception:  # ase raises many kinds for unreadable files
            raise ValueError(f'`structures`: ASE cannot read {path}: {exception}') from None
        for atoms in read_images:
            atoms.calc = None
            atoms.info = {'origin': 'input', 'source': path}
            images.append(atoms)
    return PESData.from_ase(images).store()


def _start_node(name: str, reference: Any, kind: type) -> orm.Node:
    """Return the node ``reference`` (pk or UUID) checked to be a ``kind``."""
    node = orm.load_node(reference)
    if not isinstance(node, kind):
        raise ValueError(f'`{name}`: node {reference} is a {type(node).__name__}, expected a {kind.__name__}')
    return node


def campaign_builder_from_file(campaign: dict[str, Any]):
    """Return the builder of the campaign described by the (validated, defaults filled) ``campaign`` mapping."""
    codes = {role: _code(role, label) for role, label in campaign['codes'].items()}
    structures = structures_from_files(campaign['structures'])
    is_pw = codes['dft'].default_calc_job_plugin == 'quantumespresso.pw'
    builder = TrainsPotWorkChain.get_builder_from_protocol(
        structures,
        codes,
        protocol=campaign['protocol'],
        overrides=campaign['overrides'],
        pseudo_family=campaign['pseudo_family'] if is_pw else None,
        calculator=campaign['calculator'],
        augment=campaign['augment'] and campaign['dataset'] is None,
    )
    if campaign['dataset'] is not None:
        builder.dataset = _start_node('dataset', campaign['dataset'], PESData)
    if campaign['committee'] is not None:
        previous = _start_node('committee', campaign['committee'], orm.WorkflowNode)
        if 'committee' not in previous.outputs:
            raise ValueError(f'`committee`: process {previous.pk} has no `committee` output')
        builder.committee = dict(previous.outputs.committee)
    return builder
