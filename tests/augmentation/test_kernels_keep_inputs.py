"""No kernel modifies the ``Atoms`` it is given: positions, cell, numbers and pbc are the same afterwards."""

import numpy as np
import pytest
from ase.build import bulk

from aiida_trainspot.augmentation import (
    AlloyParameters,
    DistortionParameters,
    SlabParameters,
    SupercellParameters,
    distortions,
    make_alloy,
    pad_vacuum,
    replicate,
    slabs,
    swap_species,
)

pytestmark = pytest.mark.kernel

KERNELS = {
    'supercell': lambda atoms, rng: replicate(atoms, SupercellParameters(max_atoms=200)),
    'distortions': lambda atoms, rng: distortions(atoms, DistortionParameters(n_configs=3, vacancy_fraction=1.0), rng),
    'slabs': lambda atoms, rng: slabs(atoms, SlabParameters(max_atoms=100), 10.0),
    'swap': lambda atoms, rng: swap_species(atoms, 0.5, rng),
    'alloy': lambda atoms, rng: make_alloy(
        atoms, AlloyParameters(alloy_species=('Na', 'K')), np.array([0.4, 0.6]), rng
    ),
    'vacuum': lambda atoms, rng: pad_vacuum(atoms, 10.0),
}


@pytest.mark.parametrize('kernel', KERNELS)
@pytest.mark.parametrize('periodic', [True, False])
def test_kernels_return_new_structures_and_leave_theirs_alone(kernel, periodic, rng):
    atoms = bulk('NaCl', 'rocksalt', a=5.64, cubic=True)
    atoms.pbc = [True, True, periodic]
    before = (atoms.numbers.copy(), atoms.positions.copy(), atoms.cell.array.copy(), atoms.pbc.copy())
    try:
        KERNELS[kernel](atoms, rng)
    except ValueError:  # slabs of a non-bulk structure do not apply; the input must still be intact
        assert kernel == 'slabs' and not periodic
    for value, expected in zip((atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc), before, strict=True):
        np.testing.assert_array_equal(value, expected)
