"""``DatasetAugmentationWorkChain``: from a handful of structures, the first dataset of a campaign.

The operations follow the TrainsPot paper (section II.1.2) in its order: supercells of the inputs, isolated atoms,
strained and rattled copies (some with vacancies), clusters, slabs, species swaps, alloys; then vacuum along every
non-periodic direction and a filter of atoms too close together. Each operation is a calculation function of
:mod:`aiida_trainspot.calculations.functions.augmentation`, so the provenance graph shows how every structure was made.
"""

from __future__ import annotations

import pathlib
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from aiida import orm
from aiida.engine import WorkChain, if_
from aiida_quantumespresso.workflows.protocols.utils import ProtocolMixin

from ..augmentation import (
    AlloyParameters,
    ClusterParameters,
    DistanceFilterParameters,
    DistortionParameters,
    SlabParameters,
    SubstitutionParameters,
    SupercellParameters,
    cell_problem,
    contact_problem,
    operation_seed,
    parameters_as_dict,
    parameters_from_mapping,
)
from ..calculations.functions import augmentation as functions
from ..calculations.functions.augmentation import atoms_of
from ..calculations.functions.dataset import merge_datasets
from ..data import PESData

OPERATIONS: dict[str, tuple[type | None, bool, str]] = {
    'supercell': (
        SupercellParameters,
        True,
        'Replicate the periodic inputs into supercells (these replace the inputs).',
    ),
    'isolated_atoms': (None, True, 'One isolated atom per element, in a cubic box of side `vacuum`.'),
    'rattle_strain': (DistortionParameters, True, 'Strained and rattled copies of the inputs, some with vacancies.'),
    'clusters': (ClusterParameters, True, 'Random non-periodic clusters of the elements of the inputs.'),
    'slabs': (SlabParameters, True, 'Slabs cut from the bulk (3D periodic) inputs along Miller planes.'),
    'substitution': (SubstitutionParameters, True, 'Species swapped in inputs, distorted copies and slabs.'),
    'alloys': (AlloyParameters, False, 'Alloys of the inputs (needs `alloy_species`; off by default).'),
    'distance_filter': (DistanceFilterParameters, True, 'Drop structures with atoms closer than allowed.'),
}
"""Namespace of each operation: its parameters dataclass (``None`` if it has none), default switch, description."""

STAGES = ('input', 'isolated_atoms', 'rattle_strain', 'clusters', 'slabs', 'substitution', 'alloys')
"""Datasets merged into the output, in this order."""

REPORTED_INDICES = 10
"""A report of skipped frames names at most this many indices."""

REPORTED_REASONS = 3
"""A report names at most this many distinct reasons for skipping frames; the ``skipped`` output has them all."""


def _listed(indices: list[int]) -> str:
    """Return ``N frame(s) [i, j, ...]`` naming at most :data:`REPORTED_INDICES` of ``indices``."""
    shown = ', '.join(map(str, sorted(indices)[:REPORTED_INDICES]))
    return f'{len(indices)} frame(s) [{shown}{", ..." if len(indices) > REPORTED_INDICES else ""}]'


def parameters_of(inputs: Mapping[str, Any], operation: str) -> Any:
    """Return the parameters dataclass of ``operation`` from the work chain ``inputs`` (defaults if not given)."""
    cls = OPERATIONS[operation][0]
    node = inputs.get(operation, {}).get('parameters')
    return parameters_from_mapping(cls, node.get_dict() if node is not None else None)


def is_enabled(inputs: Mapping[str, Any], operation: str) -> bool:
    """Return whether ``operation`` is switched on in ``inputs`` (its default if not given)."""
    node = inputs.get(operation, {}).get('enabled')
    return OPERATIONS[operation][1] if node is None else node.value


def parameters_validator(operation: str) -> Callable[[orm.Dict, Any], str | None]:
    """Return the validator of the ``parameters`` port of ``operation``: its dataclass must accept them."""
    cls = OPERATIONS[operation][0]

    def validate(value: orm.Dict, _: Any) -> str | None:
        try:
            parameters_from_mapping(cls, value.get_dict())
        except ValueError as exception:
            return f'`{operation}.parameters`: {exception}'
        return None

    return validate


def validate_structures(value: PESData, _: Any) -> str | None:
    """Return why ``structures`` cannot be augmented (empty, or a frame with an unusable cell), or ``None``."""
    if len(value) == 0:
        return '`structures` is empty: give at least one structure'
    for index, frame in enumerate(value.iter_frames()):
        problem = cell_problem(atoms_of(frame))
        if problem:
            return f'`structures` frame {index}: {problem}'
    return None


def validate_seed(value: orm.Int, _: Any) -> str | None:
    """Return why ``seed`` cannot seed ``numpy`` (it is negative), or ``None``."""
    return f'`seed` must not be negative, got {value.value}' if value.value < 0 else None


def validate_vacuum(value: orm.Float, _: Any) -> str | None:
    """Return why ``vacuum`` is unusable (it is not positive), or ``None``."""
    return f'`vacuum` must be positive, got {value.value}' if value.value <= 0 else None


def validate_inputs(inputs: Mapping[str, Any], _: Any) -> str | None:
    """Return a message naming the first input that contradicts another, checked before anything runs."""
    if is_enabled(inputs, 'alloys') and not parameters_of(inputs, 'alloys').alloy_species:
        return '`alloys.parameters.alloy_species` must name the elements to mix when `alloys.enabled` is True'
    structures = inputs.get('structures')
    if structures is None:
        return None
    largest = max(frame.natoms for frame in structures.iter_frames())
    max_atoms = parameters_of(inputs, 'supercell').max_atoms
    if is_enabled(inputs, 'supercell') and largest > max_atoms:
        return (
            f'`supercell.parameters.max_atoms` ({max_atoms}) is smaller than a frame of `structures` ({largest} atoms)'
        )
    covalent_fraction = parameters_of(inputs, 'distance_filter').covalent_fraction
    for index, frame in enumerate(structures.iter_frames()):
        problem = contact_problem(atoms_of(frame), covalent_fraction)
        if problem:
            return f'`structures` frame {index} has overlapping atoms: {problem}'
    return None


class DatasetAugmentationWorkChain(ProtocolMixin, WorkChain):
    """Augment a handful of structures into a diverse, unlabelled dataset (TrainsPot, section II.1.2).

    Every operation has a namespace with an ``enabled`` switch and a ``parameters`` dictionary (the fields of its
    dataclass in :mod:`aiida_trainspot.augmentation.parameters`, whose defaults are the paper's). One ``seed`` drives
    all random draws: each operation derives its own from it and its name, so switching one operation on or off does
    not change the structures of the others. Structures an operation does not apply to (slabs of a molecule, swaps in
    a pure element) are skipped, and the report says which and why.

    There are no exit codes: every input that could make an operation fail (unknown elements, fractions outside
    [0, 1], non-positive sizes, structures larger than ``supercell.max_atoms``, overlapping atoms) is refused at
    submission, and the input structures pass the distance filter, so the output is never empty.
    """

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.input(
            'structures',
            valid_type=PESData,
            validator=validate_structures,
            help='The structures to augment: bulk, slabs, wires or molecules (a zero cell is fine where not periodic).',
        )
        spec.input(
            'seed',
            valid_type=orm.Int,
            default=lambda: orm.Int(0),
            validator=validate_seed,
            help='Seed of every random draw: the same seed and inputs give the same dataset.',
        )
        spec.input(
            'vacuum',
            valid_type=orm.Float,
            default=lambda: orm.Float(15.0),
            validator=validate_vacuum,
            help='Å between periodic images along every non-periodic direction; the side of an isolated atom box.',
        )
        cls.define_operation_namespaces(spec)
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            if_(cls.should_run_supercell)(cls.run_supercell),
            if_(cls.should_run_isolated_atoms)(cls.run_isolated_atoms),
            if_(cls.should_run_rattle_strain)(cls.run_rattle_strain),
            if_(cls.should_run_clusters)(cls.run_clusters),
            if_(cls.should_run_slabs)(cls.run_slabs),
            if_(cls.should_run_substitution)(cls.run_substitution),
            if_(cls.should_run_alloys)(cls.run_alloys),
            cls.merge_structures,
            cls.pad_vacuum,
            if_(cls.should_run_distance_filter)(cls.run_distance_filter),
            cls.results,
        )
        spec.output('dataset', valid_type=PESData, help='The inputs (as supercells) and every generated structure.')

    @staticmethod
    def define_operation_namespaces(spec) -> None:
        """Define one input namespace per operation: ``enabled`` and, if it has any, ``parameters``."""
        for operation, (parameters_class, enabled, description) in OPERATIONS.items():
            spec.input_namespace(operation, help=description)
            spec.input(
                f'{operation}.enabled',
                valid_type=orm.Bool,
                default=lambda enabled=enabled: orm.Bool(enabled),
                help=f'Whether to run `{operation}`.',
            )
            if parameters_class is not None:
                spec.input(
                    f'{operation}.parameters',
                    valid_type=orm.Dict,
                    required=False,
                    validator=parameters_validator(operation),
                    help=f'Fields of `{parameters_class.__name__}` to change from their defaults; unknown keys fail.',
                )

    @classmethod
    def get_protocol_filepath(cls) -> pathlib.Path:
        """Return the path of the protocol file of this work chain."""
        return pathlib.Path(__file__).parent / 'protocols' / 'augmentation.yaml'

    @classmethod
    def get_builder_from_protocol(
        cls, structures: PESData, protocol: str | None = None, overrides: dict | None = None, seed: int | None = None
    ):
        """Return a builder for ``structures`` with the inputs of ``protocol`` (``fast``, ``balanced``, ``stringent``).

        :param structures: the structures to augment.
        :param protocol: the protocol; the default one if ``None`` (``moderate`` and ``precise`` are aliases).
        :param overrides: inputs that replace the protocol's, nested like the input namespaces.
        :param seed: the seed of the random draws; the protocol's (0) if ``None``.
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        builder = cls.get_builder()
        builder.structures = structures
        if seed is not None or 'seed' in inputs:
            builder.seed = orm.Int(inputs['seed'] if seed is None else seed)
        if 'vacuum' in inputs:
            builder.vacuum = orm.Float(inputs['vacuum'])
        for operation in OPERATIONS:
            namespace = inputs.get(operation, {})
            if 'enabled' in namespace:
                builder[operation].enabled = orm.Bool(namespace['enabled'])
            if namespace.get('parameters'):
                builder[operation].parameters = orm.Dict(namespace['parameters'])
        return builder

    def setup(self):
        """Start from the input structures; the datasets of each stage go to ``ctx.stages``."""
        self.ctx.stages = {'input': self.inputs.structures}

    def _parameters(self, operation: str) -> orm.Dict:
        """Return the full parameters of ``operation`` (defaults included), which its calculation function records."""
        return orm.Dict(parameters_as_dict(parameters_of(self.inputs, operation)))

    def _seed(self, operation: str) -> orm.Int:
        """Return the seed of ``operation``, derived from the global seed and its name."""
        return orm.Int(operation_seed(self.inputs.seed.value, operation))

    def _collect(self, operation: str, outputs: Mapping[str, Any], stage: str | None = None) -> None:
        """Keep the structures of ``operation`` as ``stage`` (default: its name) and report them."""
        self.ctx.stages[stage or operation] = outputs['structures']
        self._report_outputs(operation, outputs)

    def _report_outputs(self, operation: str, outputs: Mapping[str, Any]) -> None:
        """Report the number of structures of ``operation`` and the frames it skipped, grouped by reason."""
        self.report(f'{operation}: {len(outputs["structures"])} structures, PESData<{outputs["structures"].pk}>')
        by_reason = defaultdict(list)
        for index, reason in outputs['skipped'].items():
            by_reason[reason].append(int(index))
        reasons = sorted(by_reason.items(), key=lambda item: min(item[1]))
        for reason, indices in reasons[:REPORTED_REASONS]:
            self.report(f'{operation}: skipped {_listed(indices)}: {reason}')
        others = sorted(index for _, indices in reasons[REPORTED_REASONS:] for index in indices)
        if others:
            self.report(f'{operation}: skipped {_listed(others)} for other reasons: see Dict<{outputs["skipped"].pk}>')

    def should_run_supercell(self):
        """Return whether to replicate the inputs into supercells."""
        return is_enabled(self.inputs, 'supercell')

    def run_supercell(self):
        """Replicate the inputs: the supercells are the inputs of every later operation."""
        outputs = functions.augment_supercell(
            self.inputs.structures, self._parameters('supercell'), metadata={'call_link_label': 'supercell'}
        )
        self._collect('supercell', outputs, stage='input')

    def should_run_isolated_atoms(self):
        """Return whether to add isolated atoms."""
        return is_enabled(self.inputs, 'isolated_atoms')

    def run_isolated_atoms(self):
        """Add one isolated atom per element of the inputs and of the alloys to come."""
        alloy_species = parameters_of(self.inputs, 'alloys').alloy_species if is_enabled(self.inputs, 'alloys') else ()
        outputs = functions.augment_isolated_atoms(
            self.inputs.structures,
            self.inputs.vacuum,
            orm.List(list(alloy_species)),
            metadata={'call_link_label': 'isolated_atoms'},
        )
        self._collect('isolated_atoms', outputs)

    def should_run_rattle_strain(self):
        """Return whether to make strained and rattled copies."""
        return is_enabled(self.inputs, 'rattle_strain')

    def run_rattle_strain(self):
        """Make strained and rattled copies of the inputs, some with vacancies."""
        outputs = functions.augment_rattle_strain(
            self.ctx.stages['input'],
            self._parameters('rattle_strain'),
            self._seed('rattle_strain'),
            metadata={'call_link_label': 'rattle_strain'},
        )
        self._collect('rattle_strain', outputs)

    def should_run_clusters(self):
        """Return whether to grow random clusters."""
        return is_enabled(self.inputs, 'clusters')

    def run_clusters(self):
        """Grow random clusters of the elements of the inputs."""
        outputs = functions.augment_clusters(
            self.inputs.structures,
            self._parameters('clusters'),
            self._seed('clusters'),
            metadata={'call_link_label': 'clusters'},
        )
        self._collect('clusters', outputs)

    def should_run_slabs(self):
        """Return whether to cut slabs."""
        return is_enabled(self.inputs, 'slabs')

    def run_slabs(self):
        """Cut slabs from the bulk inputs (their Miller indices refer to the input cells, not the supercells)."""
        outputs = functions.augment_slabs(
            self.inputs.structures,
            self._parameters('slabs'),
            self.inputs.vacuum,
            metadata={'call_link_label': 'slabs'},
        )
        self._collect('slabs', outputs)

    def should_run_substitution(self):
        """Return whether to swap species."""
        return is_enabled(self.inputs, 'substitution')

    def run_substitution(self):
        """Swap species in a fraction of the inputs, the distorted copies and the slabs."""
        candidates = {
            f'stage_{position}_{stage}': self.ctx.stages[stage]
            for position, stage in enumerate(STAGES)
            if stage in ('input', 'rattle_strain', 'slabs') and stage in self.ctx.stages
        }
        if len(candidates) > 1:
            structures = merge_datasets(**candidates, metadata={'call_link_label': 'substitution_candidates'})
        else:
            structures = self.ctx.stages['input']
        outputs = functions.augment_substitution(
            structures,
            self._parameters('substitution'),
            self._seed('substitution'),
            metadata={'call_link_label': 'substitution'},
        )
        self._collect('substitution', outputs)

    def should_run_alloys(self):
        """Return whether to make alloys."""
        return is_enabled(self.inputs, 'alloys')

    def run_alloys(self):
        """Make alloys of the inputs."""
        outputs = functions.augment_alloys(
            self.ctx.stages['input'],
            self._parameters('alloys'),
            self._seed('alloys'),
            metadata={'call_link_label': 'alloys'},
        )
        self._collect('alloys', outputs)

    def merge_structures(self):
        """Merge the inputs and every generated dataset, in the paper's order."""
        stages = {
            f'stage_{position}_{stage}': self.ctx.stages[stage]
            for position, stage in enumerate(STAGES)
            if stage in self.ctx.stages
        }
        self.ctx.dataset = merge_datasets(**stages, metadata={'call_link_label': 'merge'})

    def pad_vacuum(self):
        """Give every non-periodic direction at least ``vacuum`` between periodic images."""
        outputs = functions.augment_vacuum_padding(
            self.ctx.dataset, self.inputs.vacuum, metadata={'call_link_label': 'vacuum_padding'}
        )
        self.ctx.dataset = outputs['structures']

    def should_run_distance_filter(self):
        """Return whether to drop structures with atoms too close together."""
        return is_enabled(self.inputs, 'distance_filter')

    def run_distance_filter(self):
        """Drop the structures with atoms closer than the distance filter allows."""
        outputs = functions.augment_distance_filter(
            self.ctx.dataset, self._parameters('distance_filter'), metadata={'call_link_label': 'distance_filter'}
        )
        self._report_outputs('distance_filter', outputs)
        self.ctx.dataset = outputs['structures']

    def results(self):
        """Attach the augmented dataset."""
        self.out('dataset', self.ctx.dataset)
        self.report(f'augmented {len(self.inputs.structures)} structures into {len(self.ctx.dataset)}')
