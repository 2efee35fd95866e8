import numpy as np
import pytest
from ase.build import bulk, molecule

from aiida_trainspot.uncertainty.selection import (
    above_threshold,
    cap_selection,
    farthest_point_sampling,
    structure_descriptor,
)

pytestmark = pytest.mark.kernel


def test_above_any_threshold_ignores_missing_thresholds_and_nan():
    disagreements = {
        'energy': np.array([0.1, 0.5, 0.1, 0.1]),
        'forces': np.array([0.0, 0.0, 0.9, 0.0]),
        'stress': np.array([np.nan, np.nan, 0.0, 9.0]),
    }
    assert above_threshold(disagreements, {'energy': 0.2, 'forces': 0.5}).tolist() == [False, True, True, False]
    assert above_threshold(disagreements, {'stress': 1.0, 'forces': None}).tolist() == [False, False, False, True]


def test_cap_keeps_all_when_they_fit_and_is_seeded_otherwise():
    candidates = np.arange(0, 200, 2)
    assert cap_selection(candidates[:5], 10, np.random.default_rng(0)).tolist() == candidates[:5].tolist()
    first = cap_selection(candidates, 10, np.random.default_rng(3))
    again = cap_selection(candidates, 10, np.random.default_rng(3))
    other = cap_selection(candidates, 10, np.random.default_rng(4))
    assert len(first) == 10 and len(set(first.tolist())) == 10 and set(first.tolist()) <= set(candidates.tolist())
    assert first.tolist() == again.tolist() == sorted(first.tolist())
    assert first.tolist() != other.tolist()


def test_farthest_point_sampling_picks_one_point_per_cluster():
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    sizes = [40, 3, 3, 3]
    points = np.concatenate(
        [centre + rng.normal(scale=0.1, size=(size, 2)) for centre, size in zip(centres, sizes, strict=True)]
    )
    cluster = np.repeat(np.arange(4), sizes)
    for seed in range(5):
        picked = farthest_point_sampling(points, 4, np.random.default_rng(seed))
        assert sorted(cluster[picked].tolist()) == [0, 1, 2, 3]
    diverse = cap_selection(np.arange(len(points)), 4, np.random.default_rng(0), 'diverse', points)
    assert sorted(cluster[diverse].tolist()) == [0, 1, 2, 3]
    again = cap_selection(np.arange(len(points)), 4, np.random.default_rng(0), 'diverse', points)
    assert diverse.tolist() == again.tolist()


def test_cap_rejects_bad_arguments():
    with pytest.raises(ValueError, match='unknown selection method'):
        cap_selection(np.arange(5), 2, np.random.default_rng(0), 'greedy')
    with pytest.raises(ValueError, match='`max_frames`'):
        cap_selection(np.arange(5), 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match='one descriptor row per candidate'):
        cap_selection(np.arange(5), 2, np.random.default_rng(0), 'diverse')


def test_descriptor_is_invariant_and_tells_density_apart():
    copper = bulk('Cu', 'fcc', a=3.6) * (2, 2, 2)
    species = [8, 29]
    descriptor = structure_descriptor(copper, species)
    shuffled = copper[np.random.default_rng(0).permutation(len(copper))]
    shuffled.rotate(30, 'z', rotate_cell=True)
    np.testing.assert_allclose(structure_descriptor(shuffled, species), descriptor, atol=1e-12)
    assert descriptor[:2].tolist() == [0.0, 1.0]
    # 12 nearest neighbours at a / sqrt(2) = 2.55 Å, in the shell [2.5, 2.75) Å
    assert descriptor[2 + 10] == 12
    compressed = bulk('Cu', 'fcc', a=3.3) * (2, 2, 2)
    assert np.linalg.norm(structure_descriptor(compressed, species) - descriptor) > 1.0
    water = structure_descriptor(molecule('H2O'), [1, 8])
    assert water[:2].tolist() == pytest.approx([2 / 3, 1 / 3])
