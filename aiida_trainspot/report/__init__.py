"""The campaign report: a plain record of a campaign, its figures and an HTML summary (pure, no AiiDA import)."""

from .html import write_report
from .plots import FIGURES, write_figures
from .record import (
    Calibration,
    CampaignFacts,
    CampaignRecord,
    DatasetSize,
    FrameCounts,
    IterationRecord,
    ParityData,
    PropertyCalibration,
    RecordError,
    Rmse,
    Thresholds,
    UncertaintyData,
)

__all__ = [
    'FIGURES',
    'Calibration',
    'CampaignFacts',
    'CampaignRecord',
    'DatasetSize',
    'FrameCounts',
    'IterationRecord',
    'ParityData',
    'PropertyCalibration',
    'RecordError',
    'Rmse',
    'Thresholds',
    'UncertaintyData',
    'write_figures',
    'write_report',
]
