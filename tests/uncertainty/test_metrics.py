"""The committee metrics against a hand-computed case and a loop-by-loop numpy reference on fixed arrays."""

import numpy as np
import pytest

from aiida_trainspot.uncertainty.metrics import (
    METRIC_NAMES,
    atomic_force_deviation,
    committee_metrics,
    frame_metrics,
)


def reference_metrics(energies, forces, stresses):
    """Return the metrics of one frame, written out with explicit loops over members, atoms and components."""
    members, natoms = forces.shape[:2]
    mean_energy = sum(energies) / members
    energy_std = np.sqrt(sum((energy - mean_energy) ** 2 for energy in energies) / members)
    atom_rms = []
    for atom in range(natoms):
        mean_force = sum(forces[member, atom] for member in range(members)) / members
        squares = [(forces[member, atom, k] - mean_force[k]) ** 2 for member in range(members) for k in range(3)]
        atom_rms.append(np.sqrt(sum(squares) / (3 * members)))
    if stresses is None:
        stress_std = np.nan
    else:
        component_variances = [
            np.var([stresses[member][i, j] for member in range(members)]) for i in range(3) for j in range(3)
        ]
        stress_std = np.sqrt(sum(component_variances) / 9)
    return {
        'energy_std_per_atom': energy_std / natoms,
        'force_disagreement': max(atom_rms),
        'force_mean_deviation': sum(atom_rms) / natoms,
        'stress_std': stress_std,
    }


def test_frame_metrics_by_hand():
    """Two members, two atoms: every metric is computed by hand (Eq. 1 picks the atom with the larger deviation)."""
    energies = np.array([-10.0, -12.0])  # std 1 eV over 2 atoms
    forces = np.array(
        [
            [[1.0, 0.0, 0.0], [0.0, 3.0, 0.0]],
            [[-1.0, 0.0, 0.0], [0.0, -3.0, 0.0]],
        ]
    )  # atom 0: deviations ±1 in x -> sqrt(2/6); atom 1: ±3 in y -> sqrt(18/6)
    stresses = np.zeros((2, 3, 3))
    stresses[0, 0, 0] = 0.01  # std of xx 0.005, the 8 others 0
    metrics = frame_metrics(energies, forces, stresses)
    assert metrics['energy_std_per_atom'] == pytest.approx(0.5)
    assert metrics['force_disagreement'] == pytest.approx(np.sqrt(3.0))
    assert metrics['force_mean_deviation'] == pytest.approx((np.sqrt(1 / 3) + np.sqrt(3.0)) / 2)
    assert metrics['stress_std'] == pytest.approx(0.005 / 3)
    assert np.isnan(frame_metrics(energies, forces)['stress_std'])


def test_identical_members_agree_exactly():
    """A committee of identical members has zero disagreement (to rounding), whatever the predictions."""
    rng = np.random.default_rng(1)
    forces = np.repeat(rng.normal(size=(1, 5, 3)), 3, axis=0)
    stresses = np.repeat(rng.normal(size=(1, 3, 3)), 3, axis=0)
    metrics = frame_metrics(np.full(3, -7.3), forces, stresses)
    assert metrics == pytest.approx(dict.fromkeys(METRIC_NAMES, 0.0), abs=1e-15)


def test_block_equals_reference_frame_by_frame():
    """A block of frames of different sizes, one without stress, gives the reference metrics of each frame."""
    rng = np.random.default_rng(7)
    members, natoms = 4, np.array([1, 5, 2, 8])
    energies = rng.normal(-20, 0.3, size=(members, len(natoms)))
    forces = rng.normal(size=(members, natoms.sum(), 3))
    stresses = rng.normal(scale=0.01, size=(members, len(natoms), 3, 3))
    stresses[:, 2] = np.nan  # a non-periodic frame
    metrics = committee_metrics(energies, forces, natoms, stresses).as_columns()
    offsets = np.concatenate(([0], np.cumsum(natoms)))
    for frame in range(len(natoms)):
        frame_stress = None if frame == 2 else stresses[:, frame]
        atoms = slice(offsets[frame], offsets[frame + 1])
        expected = reference_metrics(energies[:, frame], forces[:, atoms], frame_stress)
        for name in METRIC_NAMES:
            np.testing.assert_allclose(metrics[name][frame], expected[name], rtol=1e-12, err_msg=name)


def test_atomic_force_deviation_is_population_rms():
    """The per-atom deviation uses the population std (ddof=0) over members, averaged over x, y, z."""
    rng = np.random.default_rng(3)
    forces = rng.normal(size=(3, 4, 3))
    expected = np.sqrt(np.mean(np.std(forces, axis=0, ddof=0) ** 2, axis=1))
    np.testing.assert_allclose(atomic_force_deviation(forces), expected, rtol=1e-12)


def test_metrics_do_not_depend_on_a_common_shift():
    """Adding the same energy, force field and stress to every member changes no metric."""
    rng = np.random.default_rng(5)
    energies, forces, stresses = rng.normal(size=3), rng.normal(size=(3, 6, 3)), rng.normal(size=(3, 3, 3))
    shifted = frame_metrics(energies + 4.0, forces + rng.normal(size=(1, 6, 3)), stresses + 1.0)
    for name, value in frame_metrics(energies, forces, stresses).items():
        assert shifted[name] == pytest.approx(value)


@pytest.mark.parametrize(
    ('arguments', 'message'),
    [
        ((np.zeros((1, 2)), np.zeros((1, 3, 3)), np.array([1, 2])), 'members >= 2'),
        ((np.zeros((2, 2)), np.zeros((2, 4, 3)), np.array([1, 2])), '`forces` must have shape'),
        ((np.zeros((2, 2)), np.zeros((2, 3, 3)), np.array([3])), '`natoms` must hold 2'),
        ((np.zeros((2, 1)), np.zeros((2, 3, 3)), np.array([3]), np.zeros((2, 3, 3))), '`stresses` must have shape'),
    ],
)
def test_bad_shapes_are_rejected(arguments, message):
    """Inconsistent shapes, or a single member, raise a ``ValueError`` naming the argument."""
    with pytest.raises(ValueError, match=message):
        committee_metrics(*arguments)


def test_empty_block():
    """A block without frames gives empty metric columns."""
    metrics = committee_metrics(np.zeros((2, 0)), np.zeros((2, 0, 3)), np.zeros(0, dtype=int))
    assert all(len(values) == 0 for values in metrics.as_columns().values())
