"""The ``active_learning`` settings: defaults and the field named in every error."""

import pytest

from aiida_trainspot.campaign.settings import DEFAULTS, full_settings, settings_error
from aiida_trainspot.uncertainty.calibration import DEFAULT_TOLERANCES


def test_defaults_take_seed_001_tolerances_unless_thresholds_are_fixed():
    assert settings_error({}) is None
    assert full_settings({})['tolerances'] == DEFAULT_TOLERANCES
    assert full_settings({'tolerances': {'forces': 0.1}})['tolerances'] == {**DEFAULT_TOLERANCES, 'forces': 0.1}
    fixed = full_settings({'thresholds': {'forces': 0.2}})
    assert fixed['tolerances'] is None and fixed['thresholds'] == {'forces': 0.2}
    assert set(full_settings({})) == set(DEFAULTS)


@pytest.mark.parametrize(
    ('settings', 'field'),
    [
        ([], '`active_learning` must be a mapping'),
        ({'max_iterations': True}, '`active_learning.max_iterations`'),
        ({'label_budget': 2.5}, '`active_learning.label_budget`'),
        ({'targets': {}}, '`active_learning.targets`'),
        ({'targets': {'energy': 'low'}}, '`active_learning.targets.energy`'),
        ({'thresholds': [0.1]}, '`active_learning.thresholds`'),
    ],
)
def test_bad_settings_name_their_field(settings, field):
    message = settings_error(settings)
    assert message is not None and message.startswith(field), message
