import copy
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from aiida_trainspot.report import CampaignRecord, ParityData, RecordError, Rmse, UncertaintyData

from .conftest import make_record

pytestmark = pytest.mark.kernel


def test_json_round_trip_is_exact(record):
    text = record.to_json()
    again = CampaignRecord.from_json(text)
    assert again == record
    assert again.to_json() == text
    assert np.array_equal(again.parity.forces_predicted, record.parity.forces_predicted)
    assert again.iterations[1].calibration.energy.ppv == 0.25
    assert again.campaign.structures == ('diamond', 'graphite', 'graphene')


def test_record_without_stress_and_undefined_rates_round_trips():
    record = make_record(stress=False)
    data = json.loads(record.to_json())
    assert data['parity']['stress_true'] is None
    assert data['iterations'][0]['validation_rmse']['stress'] is None
    assert data['iterations'][0]['calibration']['stress'] == {'slope': None, 'tpr': None, 'ppv': None}
    assert data['iterations'][0]['calibration']['energy']['ppv'] is None
    assert CampaignRecord.from_dict(data) == record
    assert record.parity.rmse('stress') is None


def test_record_with_only_facts_round_trips(record):
    bare = CampaignRecord(campaign=record.campaign)
    assert CampaignRecord.from_json(bare.to_json()) == bare
    assert bare != record


def test_parity_rmse_is_in_mev():
    parity = ParityData(
        energy_true=[1.0, 2.0], energy_predicted=[1.003, 1.996], forces_true=[0.0], forces_predicted=[0.1]
    )
    assert parity.rmse('energy') == pytest.approx(1000 * math.sqrt((0.003**2 + 0.004**2) / 2))
    assert parity.rmse('forces') == pytest.approx(100.0)


def test_arrays_are_flat_and_read_only(record):
    assert record.parity.forces_true.shape == (40 * 8 * 3,)
    assert record.parity.stress_true.shape == (40 * 9,)
    with pytest.raises(ValueError, match='read-only'):
        record.parity.energy_true[0] = 0.0


def test_direct_construction_names_the_bad_field():
    with pytest.raises(RecordError, match='`forces_predicted`: has 2 values but `forces_true` has 3'):
        ParityData(energy_true=[1.0], energy_predicted=[1.0], forces_true=[1, 2, 3], forces_predicted=[1, 2])
    with pytest.raises(RecordError, match='`stress`'):
        Rmse(energy=1.0, forces=2.0, stress=-1.0)
    with pytest.raises(RecordError, match='`tpr`'):
        UncertaintyData(iteration=0, force_disagreement=[1.0], force_error=[1.0], tpr=1.2)


def _set(data, path, value):
    """Set ``data[path[0]][path[1]]...`` to ``value`` (``DELETE`` removes the key)."""
    for key in path[:-1]:
        data = data[key]
    if value is DELETE:
        del data[path[-1]]
    else:
        data[path[-1]] = value


DELETE = object()
BAD = [
    (('parity', 'forces_predicted'), list(range(5)), 'parity.forces_predicted', 'has 5 values'),
    (('parity', 'energy_predicted'), [], 'parity.energy_predicted', 'has 0 values'),
    (('parity', 'stress_predicted'), None, 'parity.stress_predicted', 'together with `stress_true`'),
    (('parity', 'energy_true'), [float('nan')] * 40, 'parity.energy_true', 'non-finite'),
    (('parity', 'forces_true'), ['a', 'b'], 'parity.forces_true', 'array of numbers'),
    (('uncertainty', 'force_error'), [1.0, 2.0], 'uncertainty.force_error', 'has 2 values'),
    (('uncertainty', 'iteration'), 9, 'uncertainty.iteration', 'not one of [0, 1, 2, 3]'),
    (('uncertainty', 'ppv'), 1.5, 'uncertainty.ppv', 'in [0, 1]'),
    (('iterations', 1, 'test_rmse', 'energy'), -1.0, 'iterations[1].test_rmse.energy', 'finite number'),
    (('iterations', 1, 'validation_rmse', 'forces'), '3', 'iterations[1].validation_rmse.forces', 'must be a number'),
    (('iterations', 2, 'dataset', 'train'), -3, 'iterations[2].dataset.train', 'non-negative integer'),
    (('iterations', 3, 'frames', 'failed'), 1.5, 'iterations[3].frames.failed', 'non-negative integer'),
    (('iterations', 0, 'calibration', 'forces', 'tpr'), 1.2, 'iterations[0].calibration.forces.tpr', 'in [0, 1]'),
    (('iterations', 0, 'calibration', 'energy', 'slope'), 'x', 'iterations[0].calibration.energy.slope', 'a number'),
    (('iterations', 0, 'thresholds', 'stress'), True, 'iterations[0].thresholds.stress', 'a number'),
    (('iterations', 2, 'index'), 1, 'iterations[2].index', 'increase strictly'),
    (('iterations', 0, 'flavour'), 'x', 'iterations[0].flavour', 'unknown field'),
    (('iterations', 0, 'dataset'), DELETE, 'iterations[0].dataset', 'missing field'),
    (('iterations', 1), 'not a mapping', 'iterations[1]', 'must be a mapping'),
    (('campaign', 'structures', 1), 7, 'campaign.structures[1]', 'must be a string'),
    (('campaign', 'codes', 'dft'), None, 'campaign.codes.dft', 'must be a string'),
    (('campaign', 'stop_reason'), DELETE, 'campaign.stop_reason', 'missing field'),
    (('campaign', 'wall_time'), float('inf'), 'campaign.wall_time', 'finite number'),
    (('schema_version',), 2, 'schema_version', 'must be 1'),
]


@pytest.mark.parametrize(('path', 'value', 'field', 'reason'), BAD, ids=[case[2] for case in BAD])
def test_invalid_record_names_the_field(record, path, value, field, reason):
    data = copy.deepcopy(record.to_dict())
    _set(data, path, value)
    with pytest.raises(RecordError) as caught:
        CampaignRecord.from_dict(data)
    assert caught.value.field == field
    assert reason in str(caught.value)
    assert str(caught.value).startswith(f'`{field}`')


def test_report_package_imports_no_aiida():
    code = (
        'import sys, aiida_trainspot.report\n'
        "loaded = sorted(m for m in sys.modules if m == 'aiida' or m.startswith('aiida.'))\n"
        'assert not loaded, loaded\n'
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, '-c', code], check=True)
