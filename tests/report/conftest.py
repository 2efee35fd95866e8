"""A synthetic campaign record: four iterations of a carbon campaign with stress, seeded random parity data."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_trainspot.report import (
    Calibration,
    CampaignFacts,
    CampaignRecord,
    DatasetSize,
    FrameCounts,
    IterationRecord,
    ParityData,
    PropertyCalibration,
    Rmse,
    Thresholds,
    UncertaintyData,
)


def make_iteration(index: int) -> IterationRecord:
    """Return iteration ``index`` of a campaign whose errors shrink and whose dataset grows."""
    shrink = 0.6**index
    calibration = Calibration(
        energy=PropertyCalibration(slope=1.8 + 0.1 * index, tpr=0.5, ppv=None if index == 0 else 0.25),
        forces=PropertyCalibration(slope=2.5 - 0.2 * index, tpr=0.8, ppv=0.6),
        stress=PropertyCalibration(slope=None if index == 0 else 1.1, tpr=None, ppv=None),
    )
    return IterationRecord(
        index=index,
        dataset=DatasetSize(train=40 + 30 * index, valid=5 + 4 * index, test=5 + 4 * index),
        validation_rmse=Rmse(energy=12.5 * shrink, forces=310.0 * shrink, stress=4.2 * shrink),
        test_rmse=Rmse(energy=13.25 * shrink, forces=333.3 * shrink, stress=4.4 * shrink),
        thresholds=Thresholds(
            energy=2.0 / (1.8 + 0.1 * index), forces=50.0 / (2.5 - 0.2 * index), stress=None if index == 0 else 9.09
        ),
        calibration=calibration,
        frames=FrameCounts(explored=500 + 100 * index, selected=38, labelled=36 - index, failed=2 + index),
    )


def make_record(
    stress: bool = True, structures: tuple[str, ...] = ('diamond', 'graphite', 'graphene')
) -> CampaignRecord:
    """Return a record of four iterations (with or without stress), seeded parity and uncertainty data."""
    rng = np.random.default_rng(7)
    energy = rng.normal(-155.0, 0.3, size=40)
    forces = rng.normal(0.0, 1.5, size=(40 * 8, 3))
    stress_true = rng.normal(0.0, 0.02, size=(40, 3, 3)) if stress else None
    parity = ParityData(
        energy_true=energy,
        energy_predicted=energy + rng.normal(0, 0.004, size=energy.shape),
        forces_true=forces,
        forces_predicted=forces + rng.normal(0, 0.08, size=forces.shape),
        stress_true=stress_true,
        stress_predicted=None if stress_true is None else stress_true + rng.normal(0, 0.001, size=stress_true.shape),
    )
    disagreement = rng.lognormal(np.log(30.0), 0.8, size=200)
    uncertainty = UncertaintyData(
        iteration=3,
        force_disagreement=disagreement,
        force_error=2.1 * disagreement * rng.lognormal(0, 0.3, size=200),
        slope=2.1,
        threshold=50.0 / 2.1,
        tolerance=50.0,
        tpr=0.83,
        ppv=0.61,
    )
    iterations = [make_iteration(index) for index in range(4)]
    if not stress:
        iterations = [
            IterationRecord(
                index=it.index,
                dataset=it.dataset,
                validation_rmse=Rmse(energy=it.validation_rmse.energy, forces=it.validation_rmse.forces),
                test_rmse=Rmse(energy=it.test_rmse.energy, forces=it.test_rmse.forces),
                thresholds=Thresholds(energy=it.thresholds.energy, forces=it.thresholds.forces),
                calibration=Calibration(energy=it.calibration.energy, forces=PropertyCalibration(slope=2.0)),
                frames=it.frames,
            )
            for it in iterations
        ]
    campaign = CampaignFacts(
        pk=1234,
        uuid='0b8e3f5c-7a52-4c7e-9d59-6b3a2f0c1d11',
        protocol='fast',
        structures=structures,
        codes={'dft': 'pw@localhost', 'training': 'mace_run_train@localhost', 'md': 'trainspot-md@localhost'},
        stop_reason='no frame above the calibrated thresholds',
        wall_time=1534.25,
        num_dft_runs=148,
        num_training_runs=20,
        num_md_runs=24,
    )
    return CampaignRecord(campaign=campaign, iterations=iterations, parity=parity, uncertainty=uncertainty)


@pytest.fixture
def record() -> CampaignRecord:
    """Return the synthetic record with stress."""
    return make_record()
