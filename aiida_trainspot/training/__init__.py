"""Training of interatomic potentials: hyperparameter schemas, trainer inputs and trainer outputs (no AiiDA)."""

from __future__ import annotations

import math
from typing import Any


def finite_or_none(value: Any) -> Any:
    """Return ``value`` with every NaN or infinite float (also nested in mappings and lists) replaced by ``None``.

    The trainers print ``nan`` for an error they cannot compute (no stress in a split, an empty split); the database
    stores no NaN.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(item) for item in value]
    return value
