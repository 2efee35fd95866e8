"""The ``lammps`` driver for real: ``lammps.raw`` runs Debian's LAMMPS (Tersoff carbon), frames in PESData."""

import shutil

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms
from ase.build import bulk, molecule

from aiida_trainspot.calculations.functions.lammps import frames_from_lammps
from aiida_trainspot.data import PESData, PotentialData
from aiida_trainspot.workflows.lammps_driver import get_lammps_builder, lammps_inputs_error
from tests.training.conftest import real_mace_run

pytestmark = [pytest.mark.aiida, pytest.mark.real]

TERSOFF_FILE = '/usr/share/lammps/potentials/SiC.tersoff'
TERSOFF_DIAMOND_COHESIVE_ENERGY = -7.37  # eV/atom, Tersoff PRB 37, 6991 (1988); the C entry of SiC.tersoff
NPT = {'ensemble': 'npt', 'temperature': 300.0, 'pressure': 0.0, 'steps': 300, 'thermalisation': 100, 'stride': 20}
NVT = {'ensemble': 'nvt', 'temperature': 300.0, 'steps': 200, 'thermalisation': 50, 'stride': 10, 'seed': 3}


@pytest.fixture
def lammps_code(aiida_code_installed):
    """Return Debian's ``lmp`` as a ``lammps.raw`` code on localhost, set up as `aiida-trainspot setup` does."""
    executable = shutil.which('lmp')
    assert executable is not None, 'lmp is missing: the bootstrap installs the Debian package lammps'
    return aiida_code_installed(
        default_calc_job_plugin='lammps.raw', filepath_executable=executable, prepend_text='export OMP_NUM_THREADS=1'
    )


@pytest.fixture
def tersoff(aiida_profile):
    """Return the Tersoff potential file of Debian's lammps-data."""
    return orm.SinglefileData(TERSOFF_FILE)


def run_lammps(code, structure, potential, spec, **kwargs) -> tuple[orm.CalcJobNode, PESData]:
    """Run one LAMMPS MD through the driver's builder; return the calculation and its frames."""
    _, node = run_get_node(get_lammps_builder(code, structure, potential, spec, pair_style='tersoff', **kwargs))
    assert node.exit_status == 0, node.exit_message
    frames = frames_from_lammps(node.outputs.retrieved, orm.List(['C']), orm.Dict(spec))
    return node, frames


def test_tersoff_diamond_npt_changes_the_volume(lammps_code, tersoff):
    diamond = bulk('C', 'diamond', a=3.567, cubic=True)
    node, frames = run_lammps(lammps_code, diamond, tersoff, {**NPT, 'iteration': 2})
    assert 'pair_coeff * * SiC.tersoff C' in node.inputs.script.get_content()
    assert len(frames) == (NPT['steps'] - NPT['thermalisation']) // NPT['stride'] == 10
    assert frames.species == ['C'] and frames.creator.inputs.retrieved.pk == node.outputs.retrieved.pk
    items = list(frames.iter_frames())
    assert [frame.info['step'] for frame in items] == list(range(120, 301, 20))
    assert {(frame.origin, frame.iteration, frame.labelled) for frame in items} == {('md', 2, False)}
    volumes = [abs(np.linalg.det(frame.cell)) for frame in items]
    assert np.ptp(volumes) > 1e-3 * volumes[0], f'the barostat left the volume at {volumes}'
    energies = np.array([frame.frame_arrays['driver_energy'] for frame in items]) / len(diamond)
    assert np.all(np.abs(energies - TERSOFF_DIAMOND_COHESIVE_ENERGY) < 0.1), energies
    forces = items[-1].atom_arrays['driver_forces']
    assert forces.shape == (8, 3) and np.abs(forces.sum(axis=0)).max() < 1e-6


def test_tersoff_carbon_cluster_nvt(lammps_code, tersoff):
    ring = Atoms('C6', positions=[[1.4 * np.cos(a), 1.4 * np.sin(a), 0] for a in np.arange(6) * np.pi / 3])
    _, frames = run_lammps(lammps_code, orm.StructureData(ase=ring), tersoff, NVT)
    items = list(frames.iter_frames())
    assert len(items) == 15
    assert all(not frame.pbc.any() and not frame.cell.any() for frame in items)
    distances = [np.linalg.norm(frame.positions[0] - frame.positions[1]) for frame in items]
    assert 1.1 < min(distances) and max(distances) < 1.8, 'the ring holds together'


def test_inputs_the_driver_refuses_are_named(aiida_profile, tmp_path, tersoff):
    (tmp_path / 'pet.pt').write_bytes(b'not a model')
    model = PotentialData(tmp_path / 'pet.pt', architecture='pet', species=['C'], cutoff=4.5)
    methane = molecule('CH4')
    symbols, pbc = methane.get_chemical_symbols(), methane.pbc
    assert lammps_inputs_error(symbols, pbc, model, NVT) == (
        "the structure has species ['H'] that the potential does not cover (its species: ['C'])"
    )
    assert 'npt needs a structure periodic' in lammps_inputs_error(symbols, pbc, tersoff, NPT, 'tersoff')
    assert "unknown pair style 'lj/cut'" in lammps_inputs_error(symbols, pbc, tersoff, NVT, 'lj/cut 2.5')
    assert 'needs its `pair_style`' in lammps_inputs_error(symbols, pbc, tersoff, NVT)
    assert '`temperature` must be a positive' in lammps_inputs_error(symbols, pbc, tersoff, {'temperature': -1})
    with pytest.raises(ValueError, match=r"species \['H'\]"):
        get_lammps_builder(None, methane, model, NVT)


def test_metatomic_model_builder(aiida_profile, tmp_path, lammps_code):
    (tmp_path / 'pet.pt').write_bytes(b'an exported metatomic model')
    model = PotentialData(tmp_path / 'pet.pt', architecture='pet', species=['O', 'H', 'C'], cutoff=4.5).store()
    builder = get_lammps_builder(lammps_code, molecule('CH3OH'), model, NVT)
    script = builder.script.get_content()
    assert 'pair_style metatomic pet.pt device cpu\npair_coeff * * 8 1 6\n' in script
    copied = builder.files['potential']
    assert copied.creator.process_label == 'lammps_model' and copied.get_content('rb') == b'an exported metatomic model'
    assert builder.filenames.get_dict() == {'structure': 'structure.data', 'potential': 'pet.pt'}
    again = get_lammps_builder(lammps_code, molecule('CH3OH'), model, NVT, model_file=copied)
    assert again.files['potential'].uuid == copied.uuid, 'a model is converted once for many runs'
    with pytest.raises(ValueError, match=r'`model_file` input\.in is not the LAMMPS file pet\.pt'):
        get_lammps_builder(lammps_code, molecule('CH3OH'), model, NVT, model_file=builder.script)


def test_mace_model_is_converted_for_lammps(aiida_profile, tmp_path_factory, lammps_code):
    """The model file ``pair_style mace`` reads (no LAMMPS here has that style: the script is a snapshot test)."""
    torch = pytest.importorskip('torch')
    path = real_mace_run(tmp_path_factory.getbasetemp()) / 'mace.model'
    model = PotentialData(path, architecture='mace', species=['Cu'], cutoff=4.0, seed=0).store()
    builder = get_lammps_builder(lammps_code, bulk('Cu', 'fcc', a=3.61, cubic=True), model, NPT)
    converted = builder.files['potential']
    assert (converted.filename, converted.creator.process_label) == ('mace.model-lammps.pt', 'lammps_model')
    assert (
        'pair_style mace no_domain_decomposition\npair_coeff * * mace.model-lammps.pt Cu\n'
        in builder.script.get_content()
    )
    with converted.as_path() as compiled:
        module = torch.jit.load(str(compiled))
    assert module.atomic_numbers.tolist() == [29] and float(module.r_max) == pytest.approx(4.0)
