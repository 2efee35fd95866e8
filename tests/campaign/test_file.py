"""The campaign file of ``aiida-trainspot launch``: defaults, paths relative to the file, named errors."""

import re

import pytest

from aiida_trainspot.campaign.file import DEFAULT_CODES, campaign_file_error, read_campaign


@pytest.fixture
def folder(tmp_path):
    (tmp_path / 'diamond.xyz').write_text('1\n\nC 0 0 0\n')
    return tmp_path


def test_defaults_and_absolute_paths(folder):
    campaign = read_campaign({'structures': ['diamond.xyz'], 'codes': {'dft': 'reference@localhost'}}, folder)
    assert campaign['structures'] == [str((folder / 'diamond.xyz').resolve())]
    assert campaign['codes'] == {**DEFAULT_CODES, 'dft': 'reference@localhost'}
    assert (campaign['protocol'], campaign['augment'], campaign['dataset']) == ('fast', True, None)


@pytest.mark.parametrize(
    ('campaign', 'message'),
    [
        ('structures: x', 'must hold a mapping'),
        ({'structures': ['diamond.xyz'], 'protocl': 'fast'}, "unknown fields ['protocl']"),
        ({'structures': ['diamond.xyz'], 'protocol': 'ultra'}, '`protocol` must be one of'),
        ({'structures': []}, '`structures` must list at least one structure file'),
        ({'structures': ['graphite.cif']}, "`structures`: no file 'graphite.cif'"),
        ({'structures': ['diamond.xyz'], 'codes': {'gpu': 'x'}}, "`codes` has unknown roles ['gpu']"),
        ({'structures': ['diamond.xyz'], 'codes': {'md': ''}}, '`codes.md` must be a code label'),
        ({'structures': ['diamond.xyz'], 'augment': 'yes'}, '`augment` must be true or false'),
        ({'structures': ['diamond.xyz'], 'overrides': [1]}, '`overrides` must be a mapping'),
        ({'structures': ['diamond.xyz'], 'dataset': -3}, '`dataset` must be a pk or a UUID'),
    ],
)
def test_bad_campaign_files_name_the_field(folder, campaign, message):
    assert message in (campaign_file_error(campaign, folder) or '')
    with pytest.raises(ValueError, match=re.escape(message)):
        read_campaign(campaign, folder)
