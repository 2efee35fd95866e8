"""``aiida-trainspot launch | status | report | export`` on a reduced campaign (EMT labels, not DFT; tiny MACE).

The report's numbers are checked against the campaign's provenance, not against hard-coded values.
"""

import re

import pytest
import yaml
from aiida import orm
from ase.build import bulk
from ase.io import read, write
from click.testing import CliRunner

from aiida_trainspot.cli import cmd_root
from aiida_trainspot.workflows.trainspot import TrainsPotWorkChain

pytestmark = [pytest.mark.aiida, pytest.mark.real]


@pytest.fixture
def campaign_file(tmp_path, ase_label_code, mace_train_code, md_code, evaluate_code):
    """Return a campaign file: copper, EMT labels, one committee of two tiny MACE models, no exploration."""
    write(tmp_path / 'copper.xyz', bulk('Cu', 'fcc', a=3.61, cubic=True))
    campaign = {
        'protocol': 'fast',
        'structures': ['copper.xyz'],
        'codes': {
            'dft': ase_label_code.full_label,
            'training': mace_train_code.full_label,
            'md': md_code.full_label,
            'evaluate': evaluate_code.full_label,
        },
        'calculator': {'name': 'emt'},
        'overrides': {
            'active_learning': {'max_iterations': 0},
            'training': {'mace_hyperparameters': {'max_num_epochs': 4}},
            'augmentation': {'rattle_strain': {'parameters': {'n_configs': 8}}},
        },
    }
    path = tmp_path / 'campaign.yaml'
    path.write_text(yaml.safe_dump(campaign))
    return path


def invoke(*arguments: str):
    """Return the result of ``aiida-trainspot`` with ``arguments`` on the test profile."""
    from aiida.manage import get_manager

    profile = get_manager().get_profile().name
    return CliRunner().invoke(cmd_root, [*arguments, '--profile', profile], catch_exceptions=False)


def test_launch_status_report_export(campaign_file, tmp_path):
    result = invoke('launch', str(campaign_file), '--report-dir', str(tmp_path / 'report'))
    assert result.exit_code == 0, result.output
    node = orm.QueryBuilder().append(TrainsPotWorkChain, project='*').all(flat=True)[-1]
    assert node.is_finished_ok and f'campaign {node.pk}' in result.output
    assert 'stopped: max_iterations' in result.output

    report = tmp_path / 'report'
    pngs = sorted(path.name for path in report.glob('*.png'))
    assert len(pngs) >= 5 and all((report / name).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' for name in pngs)
    html = (report / 'index.html').read_text()
    accuracy = node.outputs.accuracy.iteration_0
    for split, field in (('valid', 'validation_rmse'), ('test', 'test_rmse')):
        expected = accuracy[split]['forces_rmse']
        if expected is not None:
            match = re.search(rf'data-field="iterations\[0\]\.{field}\.forces"[^>]*data-value="([^"]+)"', html)
            match = match or re.search(rf'data-value="([^"]+)"[^>]*data-field="iterations\[0\]\.{field}\.forces"', html)
            assert match is not None, f'{field}.forces is not in the report'
            assert float(match.group(1)) == pytest.approx(expected, rel=1e-12)

    status = invoke('status', str(node.pk))
    assert status.exit_code == 0 and f'iteration 0: {len(node.outputs.dataset)} labelled frames' in status.output

    exported = tmp_path / 'dataset.xyz'
    assert invoke('export', str(node.pk), '-o', str(exported)).exit_code == 0
    frames = read(exported, index=':')
    assert len(frames) == len(node.outputs.dataset)
    first = next(node.outputs.dataset.iter_frames())
    assert frames[0].info['REF_energy'] == pytest.approx(first.energy), 'labels under the keys MACE reads'


def test_launch_names_the_bad_field(campaign_file):
    campaign = yaml.safe_load(campaign_file.read_text())
    campaign['codes']['md'] = 'no-such-code@localhost'
    campaign_file.write_text(yaml.safe_dump(campaign))
    result = invoke('launch', str(campaign_file))
    assert result.exit_code != 0 and "`codes.md`: no code 'no-such-code@localhost'" in result.output
    campaign['structures'] = ['missing.cif']
    campaign_file.write_text(yaml.safe_dump(campaign))
    assert "`structures`: no file 'missing.cif'" in invoke('launch', str(campaign_file)).output
    assert 'is a' in invoke('status', str(orm.Int(3).store().pk)).output
