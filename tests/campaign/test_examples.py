"""Every campaign file in ``examples/`` is valid as written: fields, structure files, loop settings (pure, no AiiDA)."""

from pathlib import Path

import pytest
import yaml
from ase.io import read

import aiida_trainspot
from aiida_trainspot.campaign.file import read_campaign
from aiida_trainspot.campaign.settings import settings_error

pytestmark = pytest.mark.kernel

EXAMPLES = Path(__file__).resolve().parents[2] / 'examples'
CAMPAIGNS = sorted(EXAMPLES.glob('**/campaign.yaml'))
PSEUDOS = yaml.safe_load((Path(aiida_trainspot.__file__).parent / 'environment' / 'pseudos.yaml').read_text())


def test_the_examples_are_there():
    names = {path.parent.name for path in CAMPAIGNS}
    assert {'carbon', 'molecule'} <= names, names


@pytest.mark.parametrize('path', CAMPAIGNS, ids=lambda path: path.parent.name)
def test_campaign_file_is_valid(path):
    campaign = read_campaign(yaml.safe_load(path.read_text(encoding='utf8')), path.parent)
    assert settings_error(campaign['overrides'].get('active_learning', {})) is None
    elements = set()
    for structure in campaign['structures']:
        images = read(structure, index=':')
        assert images and all(len(atoms) for atoms in images), f'{structure} holds no structure'
        elements.update(symbol for atoms in images for symbol in atoms.get_chemical_symbols())
    if campaign['codes']['dft'].startswith('pw@') and campaign['pseudo_family'] == PSEUDOS['label']:
        assert elements <= set(PSEUDOS['elements']), f'{PSEUDOS["label"]} has no pseudopotential for some of {elements}'


@pytest.mark.parametrize('path', CAMPAIGNS, ids=lambda path: path.parent.name)
def test_readme_tells_how_to_run_it(path):
    readme = (EXAMPLES / 'README.md').read_text(encoding='utf8')
    assert f'aiida-trainspot launch {path.relative_to(EXAMPLES.parent).as_posix()}' in readme


def test_molecule_example_is_non_periodic():
    path = EXAMPLES / 'molecule' / 'campaign.yaml'
    campaign = read_campaign(yaml.safe_load(path.read_text(encoding='utf8')), path.parent)
    images = [atoms for structure in campaign['structures'] for atoms in read(structure, index=':')]
    assert {symbol for atoms in images for symbol in atoms.get_chemical_symbols()} == {'H', 'C', 'O'}
    assert not any(atoms.pbc.any() for atoms in images)
    assert (campaign['protocol'], campaign['overrides']['active_learning']['max_iterations']) == ('fast', 1)
