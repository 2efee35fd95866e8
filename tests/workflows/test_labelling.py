"""Real pw.x through PwBaseWorkChain: labels in PESData agree with what pw.x itself printed."""

import io

import ase.io
import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_trainspot.data import PESData
from aiida_trainspot.workflows.labelling import AbInitioLabellingWorkChain

CHEAP = {'kpoints_distance': 0.5, 'pw': {'parameters': {'SYSTEM': {'ecutwfc': 30.0, 'ecutrho': 240.0}}}}


def labelling_inputs(dataset, code, family):
    inputs = {
        'dataset': dataset,
        'code': code,
        'pseudo_family': orm.Str(family.label),
        'protocol': orm.Str('fast'),
        'overrides': orm.Dict(CHEAP),
        'options': orm.Dict({'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}}),
    }
    return inputs


def pw_output_of(workchain, index):
    """Return ASE's own reading of the pw.x standard output of frame ``index``."""
    child = next(link.node for link in workchain.base.links.get_outgoing(link_label_filter=f'pw_{index}').all())
    calculation = child.called[-1]
    text = calculation.outputs.retrieved.get_object_content('aiida.out')
    return ase.io.read(io.StringIO(text), format='espresso-out'), text


@pytest.mark.real
def test_pw_labels_match_pw_output(carbon_frames, pw_code, pseudo_family):
    dataset = PESData.from_frames(carbon_frames[:2]).store()
    results, node = run_get_node(AbInitioLabellingWorkChain, **labelling_inputs(dataset, pw_code, pseudo_family))
    assert node.is_finished_ok, node.exit_message
    labelled = results['labelled_dataset']
    assert labelled.base.attributes.get('num_labelled') == 2
    for index, frame in enumerate(labelled.iter_frames()):
        reference, text = pw_output_of(node, index)
        # aiida-quantumespresso reads the XML, ASE the printed Ry values: they agree to printing precision.
        assert frame.energy == pytest.approx(reference.get_potential_energy(), abs=1e-4)
        np.testing.assert_allclose(frame.forces, reference.get_forces(), atol=1e-4)
        np.testing.assert_allclose(frame.stress, reference.get_stress(voigt=False), atol=1e-5)
        # pw.x prints `P=` (kbar) with the sign of a pressure: ours is the opposite of the stress trace / 3.
        pressure_kbar = float(text.split('P=')[-1].split()[0])
        assert -np.trace(frame.stress) / 3 / 1e-1 * 160.21766 == pytest.approx(pressure_kbar, abs=0.05)
    compressed = labelled.get_frame(1)
    assert np.trace(compressed.stress) < 0, 'a compressed crystal has negative stress in the ASE convention'
    assert np.abs(compressed.forces).max() > 0.1, 'the rattled cell feels forces'
    np.testing.assert_allclose(compressed.forces.sum(axis=0), 0, atol=1e-3)


@pytest.mark.aiida
@pytest.mark.parametrize(
    ('change', 'message'),
    [
        ('protocol', 'unknown `protocol`'),
        ('pseudo_family', 'does not exist'),
        ('code', 'expected `quantumespresso.pw`'),
        ('species', "no pseudopotential for \\['Au'\\]"),
    ],
)
def test_bad_inputs_are_rejected_before_any_calculation(
    carbon_frames, pw_code, pseudo_family, aiida_code_installed, change, message
):
    from ase import Atoms

    dataset = PESData.from_frames(carbon_frames[:1]).store()
    changes = {
        'protocol': {'protocol': orm.Str('precise')},
        'pseudo_family': {'pseudo_family': orm.Str('SSSP/none')},
        'code': {
            'code': aiida_code_installed(default_calc_job_plugin='core.arithmetic.add', filepath_executable='/bin/bash')
        },
        'species': {'dataset': PESData.from_ase([Atoms('Au', cell=np.eye(3) * 4, pbc=True)]).store()},
    }[change]
    inputs = {**labelling_inputs(dataset, pw_code, pseudo_family), **changes}
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    with pytest.raises(ValueError, match=message):
        run_get_node(AbInitioLabellingWorkChain, **inputs)
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before
