"""``ExplorationWorkChain`` for real: ``trainspot-md`` with a tiny MACE committee, NPT for cells, NVT for molecules."""

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms
from ase.build import bulk, fcc111

from aiida_trainspot.data import PESData, PotentialData
from aiida_trainspot.workflows.exploration import ExplorationWorkChain
from tests.training.conftest import real_mace_run

pytestmark = [pytest.mark.aiida, pytest.mark.real]

TERSOFF = '/usr/share/lammps/potentials/SiC.tersoff'
SHORT = {'timestep': 2.0, 'steps': 20, 'thermalisation': 4, 'stride': 8}


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    """Return a tiny MACE model file trained on EMT copper (once per session, shared with the training tests)."""
    return real_mace_run(tmp_path_factory.getbasetemp()) / 'mace.model'


def committee(path, size=2, species=('Cu',)) -> dict[str, PotentialData]:
    """Return ``size`` stored copies of the model ``path`` as committee members."""
    return {
        f'member_{k}': PotentialData(path, architecture='mace', species=species, cutoff=4.0, seed=k).store()
        for k in range(size)
    }


def starting_structures() -> PESData:
    """Return a Cu3 molecule, a bulk copper cell and a copper slab periodic along a and b."""
    trimer = Atoms('Cu3', positions=[[0, 0, 0], [2.5, 0, 0], [1.25, 2.1, 0]], cell=[10, 10, 10])
    slab = fcc111('Cu', size=(2, 2, 2), a=3.61, vacuum=6.0)
    slab.pbc = (True, True, False)
    return PESData.from_ase([trimer, bulk('Cu', 'fcc', a=3.61, cubic=True), slab]).store()


def test_exploration_grid_for_real(md_code, model_path):
    structures = starting_structures()
    builder = ExplorationWorkChain.get_builder_from_protocol(
        structures,
        md_code,
        committee(model_path),
        protocol='fast',
        overrides={'temperatures': [300.0, 600.0], 'pressures': [2.0], 'parameters': SHORT, 'iteration': 3},
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    runs = results['runs'].get_list()
    assert [(run['structure'], run['ensemble'], run['pressure']) for run in runs] == [
        (0, 'nvt', None), (0, 'nvt', None), (1, 'npt', 2.0), (1, 'npt', 2.0), (2, 'npt', 2.0), (2, 'npt', 2.0)
    ]  # fmt: skip
    assert {run['stop_reason'] for run in runs} == {'completed'}
    assert [run['frames'] for run in runs] == [2] * 6  # steps 8 and 16 after 4 steps of thermalisation
    calculations = [child for child in node.called if child.process_label == 'MdCalculation']
    assert len(calculations) == 6
    assert sorted(calc.inputs.parameters['seed'] for calc in calculations) == list(range(6))

    frames = list(results['frames'].iter_frames())
    assert (
        len(frames) == 12
        and {frame.iteration for frame in frames} == {3}
        and {frame.origin for frame in frames} == {'md'}
    )
    assert all('force_disagreement' in frame.frame_arrays for frame in frames)
    start = list(structures.iter_frames())
    by_atoms = {3: [], 4: [], 8: []}
    for frame in frames:
        by_atoms[len(frame.numbers)].append(frame)
    assert all(np.allclose(frame.cell, start[0].cell) for frame in by_atoms[3]), 'NVT keeps the molecule box'
    volumes = [abs(np.linalg.det(frame.cell)) for frame in by_atoms[4]]
    assert all(volume < abs(np.linalg.det(start[1].cell)) for volume in volumes), 'NPT at 2 GPa compresses the cell'
    for frame in by_atoms[8]:
        assert frame.cell[2] == pytest.approx(start[2].cell[2]), 'the slab keeps its out-of-plane vector'
        assert not np.allclose(frame.cell[:2], start[2].cell[:2]), 'the barostat acts on the periodic directions'


def test_bad_inputs_are_rejected_at_submission(md_code, model_path, aiida_code_installed):
    structures = starting_structures()
    members = committee(model_path)
    mixed = {**members, 'member_1': committee(model_path, 1, ('Cu', 'Au'))['member_0']}
    base = {
        'structures': structures,
        'temperatures': orm.List([300.0]),
        'parameters': orm.Dict(SHORT),
        'md': {'code': md_code, 'models': members},
    }
    pw_like = aiida_code_installed(default_calc_job_plugin='quantumespresso.pw', filepath_executable='/bin/true')
    cases = [
        ({'temperatures': orm.List([-10.0])}, r'`temperatures` must be positive numbers'),
        ({'pressures': orm.List([])}, r'`pressures` is empty'),
        ({'driver': orm.Str('gromacs')}, r"unknown `driver` 'gromacs'"),
        ({'parameters': orm.Dict({**SHORT, 'temperature': 10.0})}, r"`parameters` sets \['temperature'\]"),
        ({'parameters': orm.Dict({**SHORT, 'thermalisation': 40})}, r'`thermalisation` \(40 steps\) must be shorter'),
        ({'parameters': orm.Dict({'timestep': -1.0})}, r'`timestep` must be a positive number'),
        ({'md': {'code': pw_like, 'models': members}}, r'runs `quantumespresso.pw`, expected `trainspot.md`'),
        (
            {'md': {'code': md_code, 'models': mixed}},
            r'`models` know different species sets',
        ),
        ({'md': {'code': md_code, 'models': committee(model_path, 2, ('Au',))}}, r"also hold \['Cu'\]"),
        ({'md': {'code': md_code, 'models': members, 'drive': orm.Str('member_5')}}, r'`drive` must be `mean` or'),
        (
            {'parameters': orm.Dict({**SHORT, 'uncertainty_stop': {'threshold': 0.1, 'every': 2}}),
             'md': {'code': md_code, 'models': committee(model_path, 1)}},
            r'`uncertainty_stop` needs a committee of at least 2 models',
        ),
        ({'md': {'code': md_code}}, r'`models` needs at least one model'),
        ({'structures': PESData.from_ase([]).store()}, r'`structures` has no frames'),
    ]  # fmt: skip
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            run_get_node(ExplorationWorkChain, **{**base, **change})


def test_lammps_driver_tersoff_carbon_through_the_work_chain(lammps_code):
    """Real LAMMPS (Debian's ``lmp``, Tersoff carbon): NPT for diamond, NVT for a C6 ring, frames in one dataset."""
    lammps = lammps_code
    ring = Atoms('C6', positions=[[1.4 * np.cos(k * np.pi / 3), 1.4 * np.sin(k * np.pi / 3), 0] for k in range(6)])
    ring.cell, ring.pbc = [12, 12, 12], False
    ring.center()
    structures = PESData.from_ase([bulk('C', 'diamond', a=3.567, cubic=True), ring]).store()
    results, node = run_get_node(
        ExplorationWorkChain,
        structures=structures,
        temperatures=orm.List([300.0, 1000.0]),
        parameters=orm.Dict({'timestep': 0.5, 'steps': 200, 'thermalisation': 40, 'stride': 40}),
        driver=orm.Str('lammps'),
        seed=orm.Int(11),
        lammps={'code': lammps, 'potential': orm.SinglefileData(TERSOFF), 'pair_style': orm.Str('tersoff')},
    )
    assert node.is_finished_ok, node.exit_message
    runs = results['runs'].get_list()
    assert [(run['structure'], run['ensemble']) for run in runs] == [(0, 'npt'), (0, 'npt'), (1, 'nvt'), (1, 'nvt')]
    assert [run['frames'] for run in runs] == [4] * 4  # (200 - 40) / 40 after the thermalisation
    scripts = [
        child.inputs.script.get_content() for child in node.called if child.process_label == 'LammpsRawCalculation'
    ]
    assert len(scripts) == 4 and all('pair_coeff * * SiC.tersoff C' in script for script in scripts)
    frames = list(results['frames'].iter_frames())
    assert len(frames) == 16 and {frame.origin for frame in frames} == {'md'} and not any(f.labelled for f in frames)
    diamond = [frame for frame in frames if len(frame.numbers) == 8]
    assert len({round(abs(np.linalg.det(frame.cell)), 6) for frame in diamond}) > 1, 'NPT changes the volume'


def test_lammps_driver_inputs_are_checked_at_submission(lammps_code, md_code):
    lammps = lammps_code
    tersoff = {'code': lammps, 'potential': orm.SinglefileData(TERSOFF), 'pair_style': orm.Str('tersoff')}
    inputs = {
        'structures': PESData.from_ase([bulk('C', 'diamond', a=3.567)]).store(),
        'temperatures': orm.List([300.0]),
        'driver': orm.Str('lammps'),
        'lammps': tersoff,
    }
    cases = [
        ({'lammps': {}}, r'the `lammps` driver needs `lammps.code`'),
        ({'lammps': {**tersoff, 'code': md_code}}, r'`lammps.code` .* runs `trainspot.md`, expected `lammps.raw`'),
        ({'lammps': {**tersoff, 'pair_style': orm.Str('')}}, r'`lammps`: structure 0: .*needs its `pair_style`'),
        (
            {'parameters': orm.Dict({'uncertainty_stop': {'threshold': 0.1, 'every': 5}})},
            r'`uncertainty_stop` needs a committee',
        ),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            run_get_node(ExplorationWorkChain, **{**inputs, **change})
