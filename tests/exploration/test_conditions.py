"""The grid of exploration runs: NPT on T×P for periodic structures, NVT per temperature otherwise."""

import re

import pytest

from aiida_trainspot.exploration.conditions import MdRun, conditions_error, exploration_runs


def test_periodic_structures_run_npt_on_the_grid_and_molecules_nvt():
    pbcs = [[True, True, True], [False, False, False], [True, True, False]]
    runs = exploration_runs(pbcs, [300.0, 600.0], [0.0, 1.5], seed=7)
    by_structure = {index: [run for run in runs if run.structure == index] for index in range(3)}
    assert [(run.temperature, run.pressure) for run in by_structure[0]] == [
        (300.0, 0.0), (300.0, 1.5), (600.0, 0.0), (600.0, 1.5)
    ]  # fmt: skip
    assert {run.ensemble for run in by_structure[0] + by_structure[2]} == {'npt'}
    assert [(run.ensemble, run.temperature, run.pressure) for run in by_structure[1]] == [
        ('nvt', 300.0, None), ('nvt', 600.0, None)
    ]  # fmt: skip
    assert [run.seed for run in runs] == list(range(7, 7 + len(runs)))


def test_spec_fields_of_a_run():
    assert MdRun(0, 'nvt', 300.0, None, 3).spec() == {'ensemble': 'nvt', 'temperature': 300.0, 'seed': 3}
    assert MdRun(1, 'npt', 300.0, -0.5, 4).spec()['pressure'] == -0.5


@pytest.mark.parametrize(
    ('temperatures', 'pressures', 'message'),
    [
        ([], [0.0], '`temperatures` is empty'),
        ([300.0, -5.0], [0.0], r'`temperatures` must be positive numbers \(K\), got -5.0'),
        ([0], [0.0], 'got 0'),
        ([True], [0.0], 'got True'),
        ([300.0], [], '`pressures` is empty'),
        ([300.0], ['high'], "`pressures` must be numbers \\(GPa\\), got 'high'"),
    ],
)
def test_bad_conditions_are_named(temperatures, pressures, message):
    message_given = conditions_error(temperatures, pressures)
    assert message_given is not None and re.search(message, message_given)


def test_good_conditions_pass():
    assert conditions_error([1.0, 1000], [-0.5, 0, 0.5]) is None
