import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, graphene, molecule

from aiida_trainspot.dft.aims import check_aims_structure
from aiida_trainspot.dft.structure_checks import check_structure

pytestmark = pytest.mark.kernel


@pytest.mark.parametrize(
    'atoms',
    [
        molecule('H2O'),
        molecule('H2'),  # 0.74 Å, the shortest bond there is
        bulk('Si', 'diamond', a=5.43),
        bulk('Si', 'diamond', a=5.43) * (2, 2, 2),
        graphene(vacuum=0.0),  # periodic in plane, no vector along the non-periodic direction
    ],
)
def test_fit_structures_pass(atoms):
    assert check_structure(atoms) is None


def test_overlapping_atoms_are_named():
    atoms = molecule('H2O')
    atoms.positions[2] = atoms.positions[0] + [0.3, 0, 0]
    assert check_structure(atoms) == 'atoms 0 (O) and 2 (H) are 0.300 Å apart (below 0.5 Å): they overlap'


def test_overlap_across_the_cell_boundary_is_found():
    atoms = Atoms('C2', positions=[[0.1, 2, 2], [4.8, 2, 2]], cell=np.eye(3) * 5.0, pbc=True)
    assert 'atoms 0 (C) and 1 (C) are 0.300 Å apart' in check_structure(atoms)
    atoms.pbc = False  # without periodic images they are 4.7 Å apart
    assert check_structure(atoms) is None


def test_atom_overlapping_its_own_image():
    atoms = Atoms('C', cell=[0.4, 5, 5], pbc=[True, False, False])
    assert '0.400 Å from its own periodic image' in check_structure(atoms)


def test_skewed_cell_of_a_sound_crystal_passes():
    # b = 20 a + (0, 5, 0): a legal but badly skewed basis of a simple cubic lattice with 5 Å spacing
    atoms = Atoms('C2', positions=[[0, 0, 0], [2.5, 2.5, 2.5]], cell=[[5, 0, 0], [100, 5, 0], [0, 0, 5]], pbc=True)
    assert check_structure(atoms) is None
    atoms.positions[1] = [4.8, 0, 0]  # 0.2 Å from the image of atom 0 at a = (5, 0, 0)
    assert '0.200 Å apart' in check_structure(atoms)


@pytest.mark.parametrize(
    ('cell', 'pbc', 'message'),
    [
        ([[4, 0, 0], [8, 0, 0], [0, 0, 4]], True, 'vectors a, b, c along the periodic directions are (nearly)'),
        ([[4, 0, 0], [0, 4, 0], [4, 4, 0]], True, 'span 0 Å^3'),
        ([[4, 0, 0], [0, 0, 0], [0, 0, 4]], True, 'cell vector(s) b along periodic directions have zero length'),
        ([[4, 0, 0], [4.001, 0.001, 0], [0, 0, 0]], [True, True, False], 'vectors a, b along the periodic'),
    ],
)
def test_zero_volume_along_periodic_directions(cell, pbc, message):
    atoms = Atoms('C', cell=cell, pbc=pbc)
    assert message in check_structure(atoms)


def test_zero_vector_along_a_vacuum_direction_is_fine_but_not_for_fhi_aims():
    sheet = graphene(vacuum=0.0)
    assert check_structure(sheet) is None
    assert 'zero length' in check_aims_structure(sheet), 'FHI-aims computes the sheet as a 3D crystal'
    assert check_aims_structure(graphene(vacuum=7.5)) is None


def test_no_atoms():
    assert check_structure(Atoms()) == 'the structure has no atoms'
