"""The grid of exploration runs: starting structures × temperatures × pressures (pure, no AiiDA).

A structure periodic in at least one direction runs NPT at every (temperature, pressure), its barostat acting only on
the periodic directions; a structure periodic in none runs NVT at every temperature (a pressure means nothing without
a cell to scale). Each run gets its own seed, ``seed + run``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from numbers import Real
from typing import Any


@dataclass(frozen=True)
class MdRun:
    """One exploration run: the starting structure (its index), the ensemble, the conditions and the seed."""

    structure: int
    ensemble: str
    temperature: float
    pressure: float | None
    seed: int

    def spec(self) -> dict[str, Any]:
        """Return the fields of the MD spec this run sets (``ensemble``, ``temperature``, ``pressure``, ``seed``)."""
        fields = asdict(self)
        fields.pop('structure')
        if self.pressure is None:
            fields.pop('pressure')
        return fields


def _is_number(value: Any) -> bool:
    """Return whether ``value`` is a real number (booleans are not)."""
    return isinstance(value, Real) and not isinstance(value, bool)


def conditions_error(temperatures: Sequence[Any], pressures: Sequence[Any]) -> str | None:
    """Return a message naming the first invalid temperature (K, positive) or pressure (GPa, a number), or ``None``."""
    if not temperatures:
        return '`temperatures` is empty: give at least one temperature (K)'
    for temperature in temperatures:
        if not _is_number(temperature) or not temperature > 0:
            return f'`temperatures` must be positive numbers (K), got {temperature!r}'
    if not pressures:
        return '`pressures` is empty: give at least one pressure (GPa), e.g. [0.0]'
    for pressure in pressures:
        if not _is_number(pressure):
            return f'`pressures` must be numbers (GPa), got {pressure!r}'
    return None


def exploration_runs(
    pbcs: Sequence[Sequence[bool]], temperatures: Sequence[float], pressures: Sequence[float], seed: int
) -> list[MdRun]:
    """Return the runs of every structure (given by its periodicity): NPT on the T×P grid if periodic, else NVT."""
    runs: list[MdRun] = []
    for structure, pbc in enumerate(pbcs):
        periodic = any(pbc)
        for temperature in temperatures:
            for pressure in pressures if periodic else [None]:
                ensemble = 'npt' if periodic else 'nvt'
                conditions = (float(temperature), None if pressure is None else float(pressure))
                runs.append(MdRun(structure, ensemble, *conditions, seed=seed + len(runs)))
    return runs
