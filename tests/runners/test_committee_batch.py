"""Tests of the concurrent evaluation of the MACE members of a committee (:mod:`.runners.committee_batch`)."""

import numpy as np
import pytest
import torch
from ase.calculators.emt import EMT

from aiida_trainspot.runners.committee_batch import worker_threads
from aiida_trainspot.runners.evaluate import MemberError, mace_graphs, predict_committee, predict_mace_batch
from tests.runners.test_evaluate import committee_model_files, copper_structures


@pytest.fixture(scope='module')
def mace_calculators(tmp_path_factory) -> list:
    """Return four MACE calculators: the two tiny models of :func:`committee_model_files`, twice each."""
    from mace.calculators import MACECalculator

    paths = committee_model_files(tmp_path_factory.getbasetemp())
    return [MACECalculator(model_paths=str(path), device='cpu', default_dtype='float64') for path in paths * 2]


@pytest.fixture
def two_threads():
    """Give torch two intra-op threads (the members are then evaluated two at a time) and restore the count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ('members', 'threads', 'expected'), [(4, 2, (2, 1)), (4, 8, (4, 2)), (3, 8, (3, 2)), (1, 8, (1, 8)), (4, 1, (1, 1))]
)
def test_worker_threads_split_the_threads(members, threads, expected):
    """One worker per member, at most one per thread, the threads split evenly."""
    assert worker_threads(members, threads) == expected


def test_concurrent_members_equal_members_one_at_a_time(mace_calculators, two_threads):
    """Four members evaluated two at a time predict what each predicts alone, and torch keeps its thread count."""
    structures = copper_structures()
    predictions = predict_committee(mace_calculators, structures, batch_frames=3)
    assert torch.get_num_threads() == 2
    for start in (0, 3):
        graphs = mace_graphs(mace_calculators[0], structures[start : start + 3])
        frames = slice(start, start + 3 if start == 0 else None)
        rows = slice(sum(map(len, structures[:start])), sum(map(len, structures[: start + 3])))
        for member, calculator in enumerate(mace_calculators):
            energy, forces, stress = predict_mace_batch(calculator, graphs)
            np.testing.assert_allclose(predictions.energies[member, frames], energy, rtol=1e-9)
            np.testing.assert_allclose(predictions.forces[member, rows], forces, rtol=1e-6, atol=1e-12)
            periodic = [atoms.pbc.all() for atoms in structures[frames]]
            np.testing.assert_allclose(predictions.stresses[member, frames][periodic], stress[periodic], atol=1e-12)
    assert not np.allclose(predictions.energies[0], predictions.energies[1])  # the two models differ
    np.testing.assert_array_equal(predictions.energies[0], predictions.energies[2])


def test_mixed_committee_names_the_first_failing_member(mace_calculators, two_threads):
    """MACE members run at the same time, others frame by frame; a failure names the first failing member."""
    structures = copper_structures()[:3]
    committee = [mace_calculators[0], EMT(), mace_calculators[1]]
    predictions = predict_committee(committee, structures)
    atoms = structures[0].copy()
    atoms.calc = EMT()
    assert predictions.energies[1, 0] == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
    alone = predict_committee(mace_calculators[1:2], structures)
    np.testing.assert_allclose(predictions.energies[2], alone.energies[0], rtol=1e-9)

    class Broken(EMT):
        def calculate(self, *args, **kwargs):
            raise RuntimeError('broken')

    with pytest.raises(MemberError, match='broken') as failure:
        predict_committee([mace_calculators[0], Broken(), mace_calculators[1]], structures)
    assert failure.value.member == 1
    gold = structures[0].copy()
    gold.numbers[0] = 79  # an element EMT knows and the copper models do not
    with pytest.raises(MemberError) as failure:
        predict_committee([EMT(), *mace_calculators[:2]], [gold])
    assert failure.value.member == 1
