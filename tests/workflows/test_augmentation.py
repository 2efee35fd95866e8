"""DatasetAugmentationWorkChain: counts that match the parameters, physics of the output, seeds, bad input refused."""

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms
from ase.build import bulk, molecule

from aiida_trainspot.augmentation import DistortionParameters, SlabParameters, contact_problem, normal_extents
from aiida_trainspot.augmentation.geometry import plane_spacings
from aiida_trainspot.data import PESData
from aiida_trainspot.workflows.augmentation import DatasetAugmentationWorkChain

pytestmark = pytest.mark.aiida

HOWTO = Path(__file__).parents[2] / 'docs' / 'source' / 'howto' / 'augment.md'


def graphite() -> Atoms:
    """Return AB-stacked graphite (4 atoms, hexagonal cell)."""
    return Atoms(
        'C4',
        scaled_positions=[[0, 0, 0.25], [0, 0, 0.75], [1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]],
        cell=[[2.464, 0, 0], [-1.232, 2.13389, 0], [0, 0, 6.711]],
        pbc=True,
    )


@pytest.fixture
def structures(aiida_profile):
    """Return diamond, graphite and methane."""
    return PESData.from_ase([bulk('C', 'diamond', a=3.567), graphite(), molecule('CH4')]).store()


def called(workchain, label):
    """Return the calculation function that ``workchain`` called with ``label``."""
    return workchain.base.links.get_outgoing(link_label_filter=label).one().node


def origins_of(dataset, indices):
    """Return the number of frames of each origin among ``indices`` of ``dataset``."""
    return Counter(frame.origin for index, frame in enumerate(dataset.iter_frames()) if index in indices)


def test_default_inputs_give_the_counts_the_parameters_ask_for(structures):
    results, node = run_get_node(DatasetAugmentationWorkChain, structures=structures)
    assert node.is_finished_ok, node.exit_message
    dataset = results['dataset']
    counts = Counter(frame.origin for frame in dataset.iter_frames())
    distortion, slab = DistortionParameters(), SlabParameters()
    # Frames the distance filter removed, by origin; the filter reports each with its reason.
    filtered = called(node, 'distance_filter')
    removed = origins_of(filtered.inputs.structures, {int(index) for index in filtered.outputs.skipped.keys()})
    # The substitution candidates with two elements or more: methane and its distorted copies that kept their carbon.
    candidates = called(node, 'substitution_candidates').outputs.result
    multi_element = sum(1 for frame in candidates.iter_frames() if len(set(frame.numbers)) > 1)
    expected = {
        'input': 3,
        'isolated_atom': 2,  # C and H
        'rattle_strain': distortion.n_configs * 3 - removed['rattle_strain'],
        'cluster': 20,
        'slab': len(slab.miller_indices) * 2,  # diamond and graphite; methane is skipped
        'substitution': round(0.2 * multi_element) - removed['substitution'],
    }
    assert counts == expected
    assert removed['rattle_strain'] < 0.2 * distortion.n_configs * 3
    # Exactly round(0.3 × 50) distorted copies of each input lost 2 atoms.
    distorted = list(called(node, 'rattle_strain').outputs.structures.iter_frames())
    with_vacancies = Counter(frame.info['parent'] for frame in distorted if frame.info['parameters']['removed_atoms'])
    assert with_vacancies == {0: 15, 1: 15, 2: 15}
    for frame in dataset.iter_frames():
        atoms = Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)
        assert contact_problem(atoms, 0.5) is None
        gaps = plane_spacings(frame.cell) - normal_extents(atoms)
        assert np.all(gaps[~frame.pbc] >= 15.0 - 1e-9)
        assert frame.natoms <= 450
    messages = [log.message for log in orm.Log.collection.get_logs_for(node)]
    assert any(re.search(r'slabs: skipped 1 frame\(s\) \[2\]: slabs are cut from bulk', text) for text in messages)


def run_fast(structures, seed, overrides=None):
    """Run the ``fast`` protocol and return the work chain node."""
    builder = DatasetAugmentationWorkChain.get_builder_from_protocol(structures, 'fast', overrides, seed=seed)
    _, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    return node


def test_seeds_reproduce_and_operations_draw_independently(structures):
    """Same seed: same structures, even with alloys switched on in between; another seed: other structures."""
    first = run_fast(structures, seed=1)
    alloys = {'alloys': {'enabled': True, 'parameters': {'alloy_species': ['C', 'Si'], 'n_structures': 4}}}
    with_alloys = run_fast(structures, seed=1, overrides=alloys)
    other_seed = run_fast(structures, seed=2)
    for label in ('supercell', 'rattle_strain', 'clusters', 'slabs', 'substitution'):
        checksum = called(first, label).outputs.structures.checksum
        assert called(with_alloys, label).outputs.structures.checksum == checksum
        if label in ('rattle_strain', 'clusters'):
            assert called(other_seed, label).outputs.structures.checksum != checksum
    assert other_seed.outputs.dataset.checksum != first.outputs.dataset.checksum
    # The isolated atoms cover the element the alloys bring in (the reference implementation missed it).
    assert called(with_alloys, 'isolated_atoms').outputs.structures.species == ['H', 'C', 'Si']
    alloyed = list(called(with_alloys, 'alloys').outputs.structures.iter_frames())
    assert len(alloyed) == 4 and {frame.origin for frame in alloyed} == {'alloy'}
    assert {frame.info['parent'] for frame in alloyed} == {0, 1, 2}


def test_protocols_and_overrides():
    assert set(DatasetAugmentationWorkChain.get_available_protocols()) == {'fast', 'balanced', 'stringent'}
    assert DatasetAugmentationWorkChain.get_default_protocol() == 'balanced'
    inputs = DatasetAugmentationWorkChain.get_protocol_inputs(
        'fast', {'rattle_strain': {'parameters': {'rattle_fraction': 0.1}}}
    )
    assert inputs['rattle_strain']['parameters'] == {'n_configs': 4, 'rattle_fraction': 0.1}
    assert DatasetAugmentationWorkChain.get_protocol_inputs(
        'precise'
    ) == DatasetAugmentationWorkChain.get_protocol_inputs('stringent')


def bad_inputs(change):
    """Return the inputs with one thing wrong."""
    overlapping = Atoms('C2', positions=[[0, 0, 0], [0, 0, 0.3]])
    return {
        'unknown alloy element': {
            'alloys': {'enabled': orm.Bool(True), 'parameters': orm.Dict({'alloy_species': ['C', 'Xx']})}
        },
        'unknown fixed element': {
            'alloys': {'parameters': orm.Dict({'alloy_species': ['C', 'Si'], 'fixed_species': ['Qq']})}
        },
        'alloys without species': {'alloys': {'enabled': orm.Bool(True)}},
        'fraction above one': {'substitution': {'parameters': orm.Dict({'atom_fraction': 1.5})}},
        'negative distance': {'clusters': {'parameters': orm.Dict({'distance': -1.0})}},
        'zero thickness': {'slabs': {'parameters': orm.Dict({'min_thickness': 0.0})}},
        'unknown key': {'rattle_strain': {'parameters': orm.Dict({'rattle': 0.1})}},
        'zero vacuum': {'vacuum': orm.Float(0.0)},
        'negative seed': {'seed': orm.Int(-1)},
        'budget below input': {'supercell': {'parameters': orm.Dict({'max_atoms': 4})}},
        'empty input': {'structures': PESData.from_frames([]).store()},
        'overlapping atoms': {'structures': PESData.from_ase([bulk('C', 'diamond', a=3.567), overlapping]).store()},
    }[change]


@pytest.mark.parametrize(
    ('change', 'message'),
    [
        ('unknown alloy element', r"`alloys.parameters`: `alloy_species` has unknown elements \['Xx'\]"),
        ('unknown fixed element', r"`alloys.parameters`: `fixed_species` has unknown elements \['Qq'\]"),
        ('alloys without species', '`alloys.parameters.alloy_species` must name the elements to mix'),
        ('fraction above one', r'`substitution.parameters`: `atom_fraction` must lie in \[0, 1\]'),
        ('negative distance', '`clusters.parameters`: `distance` must be positive'),
        ('zero thickness', '`slabs.parameters`: `min_thickness` must be positive'),
        ('unknown key', r"`rattle_strain.parameters`: unknown parameters \['rattle'\]"),
        ('zero vacuum', '`vacuum` must be positive'),
        ('negative seed', '`seed` must not be negative'),
        (
            'budget below input',
            r'`supercell.parameters.max_atoms` \(4\) is smaller than a frame of `structures` \(5 atoms\)',
        ),
        ('empty input', '`structures` is empty'),
        (
            'overlapping atoms',
            r'`structures` frame 1 has overlapping atoms: atoms 0 \(C\) and 1 \(C\) are 0.300 Å apart',
        ),
    ],
)
def test_bad_input_is_refused_before_anything_runs(structures, change, message):
    inputs = {'structures': structures, **bad_inputs(change)}
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    with pytest.raises(ValueError, match=message):
        run_get_node(DatasetAugmentationWorkChain, **inputs)
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before


def test_the_howto_example_runs(aiida_profile):
    """The code block of ``docs/source/howto/augment.md`` runs as written (with the test profile loaded)."""
    code = re.search(r'```python\n(.*?)```', HOWTO.read_text(encoding='utf-8'), re.DOTALL).group(1)
    namespace = {}
    exec(compile(code, str(HOWTO), 'exec'), namespace)  # noqa: S102 - our own documentation
    assert namespace['node'].is_finished_ok
    assert len(namespace['dataset']) > len(namespace['structures'])
