"""FHI-aims through ``AbInitioLabellingWorkChain`` end to end, with a stand-in for the binary (FHI-aims cannot run).

The stand-in (``aims_standin.py``) checks the ``control.in`` and ``geometry.in`` each frame's ``AimsCalculation``
wrote and prints one of the real FHI-aims outputs that ASE ships; the frames are the structures of those outputs, so
the labels in the dataset must be what ASE reads from them.
"""

import stat
import sys
import warnings
from pathlib import Path

import ase.io
import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms
from ase.build import molecule

from aiida_trainspot.data import PESData
from aiida_trainspot.workflows.labelling import AbInitioLabellingWorkChain

pytestmark = pytest.mark.aiida

STANDIN = Path(__file__).parent / 'aims_standin.py'
SPECIES_DEFAULTS = Path(__file__).parents[1] / 'dft' / 'data' / 'species_defaults' / 'defaults_2020'
ASE_AIMS_OUTPUTS = Path(ase.__file__).parent / 'test' / 'testdata' / 'aims'


def read_aims(name: str) -> Atoms:
    """Return the last structure of ASE's FHI-aims output ``name``, with ASE's reading of its results."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        return ase.io.read(ASE_AIMS_OUTPUTS / name, index=-1, format='aims-output')


@pytest.fixture
def aims_standin_code(aiida_code_installed, tmp_path):
    """Return a code of plugin ``trainspot.aims`` whose executable is the stand-in, run by this Python."""
    wrapper = tmp_path / 'aims.x'
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {STANDIN} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return aiida_code_installed(
        default_calc_job_plugin='trainspot.aims', filepath_executable=str(wrapper), with_mpi=False
    )


def aims_inputs(dataset, code, **changes):
    inputs = {
        'dataset': dataset,
        'code': code,
        'protocol': orm.Str('fast'),
        'aims': {
            'species': orm.FolderData(tree=SPECIES_DEFAULTS),
            'parameters': orm.Dict({'xc': 'pbe', 'relativistic': ['atomic_zora', 'scalar']}),
        },
        'options': orm.Dict({'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}}),
        'max_concurrent': orm.Int(2),
    }
    return {**inputs, **changes}


def test_aims_labels_a_molecule_and_a_crystal_and_records_a_failed_scf(aims_standin_code):
    water, silicon = read_aims('singlepoint.out'), read_aims('relax.out')
    methane = molecule('CH4')  # the stand-in answers with an SCF that did not converge
    frames = [Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc) for atoms in (water, silicon)]
    dataset = PESData.from_ase([frames[0], methane, frames[1]]).store()
    results, node = run_get_node(
        AbInitioLabellingWorkChain, **aims_inputs(dataset, aims_standin_code, max_failure_fraction=orm.Float(0.5))
    )
    assert node.is_finished_ok, node.exit_message
    jobs = {link.link_label: link.node for link in node.base.links.get_outgoing(node_class=orm.CalcJobNode).all()}
    assert sorted(jobs) == ['aims_0', 'aims_1', 'aims_2']
    assert 'kpoints_spacing' not in jobs['aims_0'].inputs, 'a molecule gets no k-points'
    assert jobs['aims_2'].inputs.kpoints_spacing.value == pytest.approx(0.30), 'the `fast` protocol spacing'

    labelled = results['labelled_dataset']
    assert len(labelled) == 2
    for frame, expected in zip(labelled.iter_frames(), (water, silicon), strict=True):
        assert frame.numbers.tolist() == expected.numbers.tolist()
        assert frame.energy == pytest.approx(expected.calc.results['energy'], abs=1e-8)
        np.testing.assert_allclose(frame.forces, expected.get_forces(), atol=1e-10)
    assert labelled.get_frame(0).stress is None, 'a molecule has no stress'
    np.testing.assert_allclose(labelled.get_frame(1).stress, silicon.get_stress(voigt=False), atol=1e-12)

    (failed,) = results['failed_dataset'].iter_frames()
    assert sorted(failed.numbers.tolist()) == [1, 1, 1, 1, 6] and not failed.labelled
    assert f'AimsCalculation<{jobs["aims_1"].pk}> ended finished with exit status 410' in failed.failure_reason
    assert 'SCF cycle not converged' in failed.failure_reason


@pytest.mark.parametrize(
    ('change', 'message'),
    [
        ('no_aims', '`aims.species` and `aims.parameters` are required to label with FHI-aims'),
        ('gold', "`aims.species` has no species defaults for \\['Au'\\] in `light/`"),
        ('tight_silicon', "`aims.species` has no species defaults for \\['Si'\\] in `tight/`"),
        ('no_xc', "`parameters`: keyword\\(s\\) \\['xc'\\] are required"),
    ],
)
def test_bad_aims_inputs_are_rejected_before_any_calculation(aims_standin_code, change, message):
    silicon = read_aims('relax.out')
    dataset = PESData.from_ase([Atoms(silicon.numbers, silicon.positions, cell=silicon.cell, pbc=True)]).store()
    inputs = aims_inputs(dataset, aims_standin_code)
    if change == 'no_aims':
        del inputs['aims']
    elif change == 'gold':
        inputs['dataset'] = PESData.from_ase([silicon, Atoms('Au', cell=np.eye(3) * 4, pbc=True)]).store()
    elif change == 'tight_silicon':
        inputs['aims']['basis'] = orm.Str('tight')
    else:
        inputs['aims']['parameters'] = orm.Dict({'spin': 'none'})
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    with pytest.raises(ValueError, match=message):
        run_get_node(AbInitioLabellingWorkChain, **inputs)
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before
