"""AiiDA data types: datasets (``PESData``) and trained models (``PotentialData``)."""

from .pesdata import PESData
from .potential import PotentialData

__all__ = ('PESData', 'PotentialData')
