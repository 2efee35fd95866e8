"""``AimsCalculation`` writes its inputs into a real folder; bad inputs are refused at submission, naming the input.

FHI-aims is not run: the code is an installed code that is never executed.
"""

from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.common.folders import Folder
from aiida.engine import run_get_node
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager
from ase import Atoms
from ase.build import bulk, molecule

from aiida_trainspot.calculations.aims import AimsCalculation

pytestmark = pytest.mark.aiida

SPECIES_DEFAULTS = Path(__file__).parents[1] / 'dft' / 'data' / 'species_defaults' / 'defaults_2020'
PARAMETERS = {'xc': 'pbe', 'relativistic': ['atomic_zora', 'scalar'], 'sc_iter_limit': 60}


@pytest.fixture
def aims_code(aiida_code_installed):
    return aiida_code_installed(default_calc_job_plugin='trainspot.aims', filepath_executable='/bin/true')


@pytest.fixture
def aims_inputs(aims_code):
    def inputs(atoms, **changes):
        return {
            'code': aims_code,
            'structure': orm.StructureData(ase=atoms),
            'parameters': orm.Dict(PARAMETERS),
            'species': orm.FolderData(tree=SPECIES_DEFAULTS),
            'kpoints_spacing': orm.Float(0.3),
            'metadata': {'options': {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}}},
            **changes,
        }

    return inputs


def prepare(inputs, tmp_path):
    """Return the ``CalcInfo`` of ``AimsCalculation`` with ``inputs`` and the folder it wrote."""
    process = instantiate_process(get_manager().get_runner(), AimsCalculation, **inputs)
    folder = Folder(str(tmp_path))
    return process.prepare_for_submission(folder), tmp_path


def keyword_lines(text):
    head = text.split('####', 1)[0]
    return [line.split(maxsplit=1) for line in head.splitlines() if line.strip() and not line.startswith('#')]


def test_periodic_cell_inputs(aims_inputs, tmp_path):
    silicon = bulk('Si', 'diamond', a=5.43)
    calcinfo, folder = prepare(aims_inputs(silicon), tmp_path)
    assert sorted(path.name for path in folder.iterdir()) == ['control.in', 'geometry.in']
    control = (folder / 'control.in').read_text()
    assert keyword_lines(control) == [
        ['xc', 'pbe'],
        ['relativistic', 'atomic_zora scalar'],
        ['sc_iter_limit', '60'],
        ['compute_forces', '.true.'],
        ['compute_analytical_stress', '.true.'],
        ['k_grid', '7 7 7'],
    ]
    assert control.endswith((SPECIES_DEFAULTS / 'light' / '14_Si_default').read_text())
    geometry = (folder / 'geometry.in').read_text().splitlines()
    lattice = [line.split()[1:] for line in geometry if line.startswith('lattice_vector')]
    np.testing.assert_allclose(np.array(lattice, dtype=float), silicon.cell.array, atol=1e-12)
    assert [line.split()[-1] for line in geometry if line.startswith('atom')] == ['Si', 'Si']
    (codeinfo,) = calcinfo.codes_info
    assert codeinfo.stdout_name == 'aims.out'
    assert codeinfo.stdin_name is None, 'FHI-aims reads control.in and geometry.in from its working directory'
    assert calcinfo.retrieve_list == ['aims.out']


def test_molecule_inputs_with_tight_species(aims_inputs, tmp_path):
    _, folder = prepare(aims_inputs(molecule('H2O'), basis=orm.Str('tight')), tmp_path)
    control = (folder / 'control.in').read_text()
    assert keyword_lines(control)[-1] == ['compute_forces', '.true.']
    assert 'k_grid' not in control, 'the k-point spacing is ignored for a molecule'
    tight = SPECIES_DEFAULTS / 'tight'
    assert control.endswith((tight / '08_O_default').read_text() + (tight / '01_H_default').read_text())
    assert 'lattice_vector' not in (folder / 'geometry.in').read_text()


def test_defaults(aims_inputs):
    options = AimsCalculation.spec().inputs['metadata']['options']
    assert options['parser_name'].default == 'trainspot.aims'
    assert options['withmpi'].default is True
    assert (options['input_filename'].default, options['output_filename'].default) == ('control.in', 'aims.out')
    assert AimsCalculation.spec().inputs['basis'].default().value == 'light'


NODE_TYPES = {'basis': orm.Str, 'kpoints_spacing': orm.Float, 'parameters': orm.Dict}


def overlapping_water():
    water = molecule('H2O')
    water.positions[1] = water.positions[0] + [0.2, 0, 0]
    return water


@pytest.mark.parametrize(
    ('structure', 'changes', 'message'),
    [
        (overlapping_water, {}, '`structure`: atoms 0 \\(O\\) and 1 \\(H\\) are 0.200 Å apart'),
        (
            lambda: Atoms(
                'Si2', positions=[[0, 0, 0], [1.3, 1.3, 1.3]], cell=[[4, 0, 0], [4, 0.001, 0], [0, 0, 4]], pbc=True
            ),
            {},
            '`structure`: cell vectors a, b, c along the periodic directions are \\(nearly\\) linearly dependent',
        ),
        (lambda: Atoms('Au', cell=np.eye(3) * 4, pbc=True), {}, "`species` has no species defaults for \\['Au'\\]"),
        (lambda: bulk('Si'), {'basis': 'tight'}, "no species defaults for \\['Si'\\] in `tight/`"),
        (lambda: bulk('Si'), {'basis': 'really_tight'}, "`basis` 'really_tight' is not one of"),
        (lambda: bulk('Si'), {'kpoints_spacing': None}, '`kpoints_spacing` is required for a periodic'),
        (lambda: bulk('Si'), {'kpoints_spacing': 0.0}, '`kpoints_spacing` must be positive'),
        (
            lambda: bulk('Si'),
            {'parameters': {'xc': 'pbe', 'k_grid': [1, 1, 1]}},
            "`parameters`: keyword\\(s\\) \\['k_grid'\\] are set by the calculation",
        ),
        (lambda: bulk('Si'), {'parameters': {'spin': 'none'}}, "\\['xc'\\] are required"),
    ],
)
def test_bad_inputs_are_refused_before_anything_runs(aims_inputs, structure, changes, message):
    nodes = {key: NODE_TYPES[key](value) for key, value in changes.items() if value is not None}
    removed = [key for key, value in changes.items() if value is None]
    inputs = {key: value for key, value in aims_inputs(structure(), **nodes).items() if key not in removed}
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    with pytest.raises(ValueError, match=message):
        run_get_node(AimsCalculation, **inputs)
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before


def test_code_of_another_plugin_is_refused(aims_inputs, aiida_code_installed):
    pw = aiida_code_installed(default_calc_job_plugin='quantumespresso.pw', filepath_executable='/bin/true')
    with pytest.raises(ValueError, match=r'`code` \S+ runs `quantumespresso\.pw`, expected `trainspot\.aims`'):
        run_get_node(AimsCalculation, **aims_inputs(molecule('H2O'), code=pw))


def test_species_folder_without_the_basis_layout_is_refused(aims_inputs):
    flat = orm.FolderData(tree=SPECIES_DEFAULTS / 'light')  # the sub-folder itself instead of defaults_2020
    with pytest.raises(ValueError, match='`species` has no sub-folder `light`'):
        run_get_node(AimsCalculation, **aims_inputs(molecule('H2O'), species=flat))
