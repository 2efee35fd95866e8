"""The campaign record: everything the report shows, as plain validated data (no AiiDA import).

The command ``aiida-trainspot report`` gathers a :class:`CampaignRecord` from the provenance of a finished campaign;
:mod:`~aiida_trainspot.report.plots` and :mod:`~aiida_trainspot.report.html` only read it. The record round-trips
through JSON (:meth:`CampaignRecord.to_dict`, :meth:`CampaignRecord.from_dict`); every value is checked on
construction and a bad one raises :class:`RecordError` naming the field (``iterations[2].test_rmse.forces``).

Units. Summary numbers (RMSE, thresholds, tolerances and the per-frame force disagreement and error of
:class:`UncertaintyData`) are in meV: meV/atom, meV/Å and meV/Å³ (:data:`UNITS`). The parity arrays of
:class:`ParityData` keep the units of the dataset: eV/atom, eV/Å and eV/Å³ (:data:`PARITY_UNITS`). Thresholds are
disagreement thresholds (``tolerance / slope``, see :mod:`aiida_trainspot.uncertainty.calibration`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, TypeVar

import numpy as np

SCHEMA_VERSION = 1
PROPERTIES = ('energy', 'forces', 'stress')
UNITS = {'energy': 'meV/atom', 'forces': 'meV/Å', 'stress': 'meV/Å³'}
PARITY_UNITS = {'energy': 'eV/atom', 'forces': 'eV/Å', 'stress': 'eV/Å³'}

T = TypeVar('T')


class RecordError(ValueError):
    """A value of a campaign record is invalid; ``field`` names it (dotted path)."""

    def __init__(self, field: str, reason: str) -> None:
        """Store the dotted field path and the reason."""
        super().__init__(f'`{field}`: {reason}' if field else reason)
        self.field = field
        self.reason = reason

    def within(self, prefix: str) -> RecordError:
        """Return the same error with ``prefix`` prepended to the field path."""
        joined = f'{prefix}.{self.field}' if self.field else prefix
        return RecordError(joined, self.reason)


def _nested(where: str, build: Callable[[], T]) -> T:
    """Return ``build()``, re-raising a :class:`RecordError` with ``where`` prepended to its field."""
    try:
        return build()
    except RecordError as error:
        raise error.within(where) from None


def _number(
    value: Any, name: str, optional: bool = False, lower: float = -math.inf, upper: float = math.inf
) -> float | None:
    """Return ``value`` as a finite float in ``[lower, upper]`` (or ``None`` when ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise RecordError(name, f'must be a number{" or None" if optional else ""}, got {value!r}')
    value = float(value)
    if not math.isfinite(value) or not lower <= value <= upper:
        raise RecordError(name, f'must be a finite number in [{lower}, {upper}], got {value!r}')
    return value


def _count(value: Any, name: str) -> int:
    """Return ``value`` as a non-negative int (an integral float from JSON is accepted)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise RecordError(name, f'must be a non-negative integer, got {value!r}')
    return int(value)


def _text(value: Any, name: str) -> str:
    """Return ``value`` if it is a string."""
    if not isinstance(value, str):
        raise RecordError(name, f'must be a string, got {value!r}')
    return value


def _array(value: Any, name: str, optional: bool = False) -> np.ndarray | None:
    """Return ``value`` as a flat, read-only float64 array of finite numbers (or ``None`` when ``optional``)."""
    if value is None and optional:
        return None
    try:
        array = np.array(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise RecordError(name, 'must be an array of numbers') from None
    if not np.all(np.isfinite(array)):
        raise RecordError(name, f'has {np.count_nonzero(~np.isfinite(array))} non-finite values')
    array.flags.writeable = False
    return array


def _same_length(owner: Any, first: str, second: str) -> None:
    """Raise if the arrays ``owner.first`` and ``owner.second`` differ in length."""
    a, b = getattr(owner, first), getattr(owner, second)
    if (a is None) != (b is None):
        raise RecordError(second, f'must be given together with `{first}` (or both omitted)')
    if a is not None and len(a) != len(b):
        raise RecordError(second, f'has {len(b)} values but `{first}` has {len(a)}')


def _check_keys(cls: type, data: Any) -> None:
    """Raise unless ``data`` is a mapping with every required field of ``cls`` and no unknown key."""
    if not isinstance(data, Mapping):
        raise RecordError('', f'a {cls.__name__} must be a mapping, got {type(data).__name__}')
    known = {item.name: item for item in fields(cls)}
    for key in data:
        if key not in known:
            raise RecordError(str(key), f'unknown field of {cls.__name__}')
    for name, item in known.items():
        if name not in data and item.default is MISSING and item.default_factory is MISSING:
            raise RecordError(name, f'missing field of {cls.__name__}')


def _set(owner: Any, name: str, value: Any) -> None:
    """Set a field of a frozen dataclass during ``__post_init__``."""
    object.__setattr__(owner, name, value)


class _Plain:
    """Mixin for records whose fields are all plain values: ``to_dict`` and ``from_dict`` by field name."""

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-serialisable mapping."""
        return {item.name: getattr(self, item.name) for item in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        """Return the record of ``data`` (as written by :meth:`to_dict`), validated."""
        _check_keys(cls, data)
        return cls(**data)


@dataclass(frozen=True)
class _PerProperty(_Plain):
    """One non-negative value (or ``None``) per property: energy, forces, stress."""

    energy: float | None = None
    forces: float | None = None
    stress: float | None = None

    def __post_init__(self) -> None:
        """Validate: non-negative finite numbers or ``None``."""
        for name in PROPERTIES:
            _set(self, name, _number(getattr(self, name), name, optional=True, lower=0))


@dataclass(frozen=True)
class Rmse(_PerProperty):
    """Committee RMSE on one data split: energy (meV/atom), forces (meV/Å), stress (meV/Å³).

    A value is ``None`` when the split has no such data (no stress on molecules, an empty split).
    """


@dataclass(frozen=True)
class Thresholds(_PerProperty):
    """Disagreement thresholds used to select frames (meV/atom, meV/Å, meV/Å³); ``None`` where none was set."""


@dataclass(frozen=True)
class PropertyCalibration(_Plain):
    """Calibration of one property: slope of ``error = slope · disagreement``, TPR and PPV (``None`` if undefined)."""

    slope: float | None = None
    tpr: float | None = None
    ppv: float | None = None

    def __post_init__(self) -> None:
        """Validate: a finite slope, rates in [0, 1]; each may be ``None``."""
        _set(self, 'slope', _number(self.slope, 'slope', optional=True))
        for name in ('tpr', 'ppv'):
            _set(self, name, _number(getattr(self, name), name, optional=True, lower=0, upper=1))


@dataclass(frozen=True)
class Calibration:
    """The calibration of one iteration, per property."""

    energy: PropertyCalibration = field(default_factory=PropertyCalibration)
    forces: PropertyCalibration = field(default_factory=PropertyCalibration)
    stress: PropertyCalibration = field(default_factory=PropertyCalibration)

    def __post_init__(self) -> None:
        """Validate the types of the parts."""
        for name in PROPERTIES:
            if not isinstance(getattr(self, name), PropertyCalibration):
                raise RecordError(name, 'must be a PropertyCalibration')

    def to_dict(self) -> dict[str, Any]:
        """Return the calibration as a JSON-serialisable mapping."""
        return {name: getattr(self, name).to_dict() for name in PROPERTIES}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Return the calibration of ``data``, validated."""
        _check_keys(cls, data)
        parts = {name: _nested(name, lambda v=value: PropertyCalibration.from_dict(v)) for name, value in data.items()}
        return cls(**parts)


@dataclass(frozen=True)
class DatasetSize(_Plain):
    """Number of labelled frames in each split of the training data of an iteration."""

    train: int
    valid: int
    test: int

    def __post_init__(self) -> None:
        """Validate: non-negative integers."""
        for item in fields(self):
            _set(self, item.name, _count(getattr(self, item.name), item.name))

    @property
    def total(self) -> int:
        """Return the number of frames in all splits."""
        return self.train + self.valid + self.test


@dataclass(frozen=True)
class FrameCounts(_Plain):
    """Frames of an iteration: explored by MD, selected as uncertain, labelled by DFT, failed in DFT."""

    explored: int = 0
    selected: int = 0
    labelled: int = 0
    failed: int = 0

    def __post_init__(self) -> None:
        """Validate: non-negative integers."""
        for item in fields(self):
            _set(self, item.name, _count(getattr(self, item.name), item.name))


@dataclass(frozen=True)
class IterationRecord:
    """One iteration of the active-learning loop."""

    index: int
    dataset: DatasetSize
    validation_rmse: Rmse
    test_rmse: Rmse
    thresholds: Thresholds = field(default_factory=Thresholds)
    calibration: Calibration | None = None
    frames: FrameCounts = field(default_factory=FrameCounts)

    _PARTS = {
        'dataset': DatasetSize,
        'validation_rmse': Rmse,
        'test_rmse': Rmse,
        'thresholds': Thresholds,
        'calibration': Calibration,
        'frames': FrameCounts,
    }

    def __post_init__(self) -> None:
        """Validate the index and the types of the parts."""
        _set(self, 'index', _count(self.index, 'index'))
        for name, kind in self._PARTS.items():
            value = getattr(self, name)
            if not isinstance(value, kind) and not (name == 'calibration' and value is None):
                raise RecordError(name, f'must be a {kind.__name__}, got {type(value).__name__}')

    def to_dict(self) -> dict[str, Any]:
        """Return the iteration as a JSON-serialisable mapping."""
        parts = {name: getattr(self, name) for name in self._PARTS}
        return {'index': self.index, **{name: None if v is None else v.to_dict() for name, v in parts.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IterationRecord:
        """Return the iteration of ``data``, validated."""
        _check_keys(cls, data)
        parts = {}
        for name, kind in cls._PARTS.items():
            if name in data and not (name == 'calibration' and data[name] is None):
                parts[name] = _nested(name, lambda k=kind, v=data[name]: k.from_dict(v))
        return cls(index=data['index'], **parts)


@dataclass(frozen=True, eq=False)
class ParityData(_Plain):
    """Test-set labels and final-committee predictions: energy per atom (eV/atom), force and stress components.

    Forces are the flat Cartesian components of all atoms (eV/Å); stress the flat components of all frames (eV/Å³),
    ``None`` when the test set has no stress. Each predicted array has the length of its true one.
    """

    energy_true: np.ndarray
    energy_predicted: np.ndarray
    forces_true: np.ndarray
    forces_predicted: np.ndarray
    stress_true: np.ndarray | None = None
    stress_predicted: np.ndarray | None = None

    def __post_init__(self) -> None:
        """Validate: finite arrays, predicted and true of equal length, stress both or neither."""
        for item in fields(self):
            _set(self, item.name, _array(getattr(self, item.name), item.name, optional=item.name.startswith('stress')))
        for name in PROPERTIES:
            _same_length(self, f'{name}_true', f'{name}_predicted')

    def rmse(self, name: str) -> float | None:
        """Return the RMSE of property ``name`` in meV units (:data:`UNITS`), ``None`` without data."""
        true, predicted = getattr(self, f'{name}_true'), getattr(self, f'{name}_predicted')
        if true is None or not len(true):
            return None
        return 1000.0 * float(np.sqrt(np.mean((predicted - true) ** 2)))

    def to_dict(self) -> dict[str, Any]:
        """Return the arrays as lists of floats."""
        return {item.name: _list(getattr(self, item.name)) for item in fields(self)}


@dataclass(frozen=True, eq=False)
class UncertaintyData:
    """Force disagreement against true force error per labelled frame at the calibration of iteration ``iteration``.

    Disagreement, error, threshold and tolerance in meV/Å; ``slope`` of ``error = slope · disagreement``; the TPR
    and PPV of the threshold on these frames. Each of the last five may be ``None`` when undefined.
    """

    iteration: int
    force_disagreement: np.ndarray
    force_error: np.ndarray
    slope: float | None = None
    threshold: float | None = None
    tolerance: float | None = None
    tpr: float | None = None
    ppv: float | None = None

    def __post_init__(self) -> None:
        """Validate: equal-length finite arrays, a finite slope, threshold and tolerance ≥ 0, rates in [0, 1]."""
        _set(self, 'iteration', _count(self.iteration, 'iteration'))
        for name in ('force_disagreement', 'force_error'):
            _set(self, name, _array(getattr(self, name), name))
        _same_length(self, 'force_disagreement', 'force_error')
        _set(self, 'slope', _number(self.slope, 'slope', optional=True))
        for name in ('threshold', 'tolerance'):
            _set(self, name, _number(getattr(self, name), name, optional=True, lower=0))
        for name in ('tpr', 'ppv'):
            _set(self, name, _number(getattr(self, name), name, optional=True, lower=0, upper=1))

    def to_dict(self) -> dict[str, Any]:
        """Return the data as a JSON-serialisable mapping."""
        return {item.name: _list(getattr(self, item.name)) for item in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UncertaintyData:
        """Return the data of ``data``, validated."""
        _check_keys(cls, data)
        return cls(**data)


@dataclass(frozen=True)
class CampaignFacts:
    """What the campaign was: node, protocol, structures (labels), codes (role → code label), outcome and costs.

    ``wall_time`` is in seconds; ``pk`` may be ``None`` for a record made outside a profile.
    """

    uuid: str
    protocol: str
    structures: Sequence[str]
    codes: Mapping[str, str]
    stop_reason: str
    wall_time: float
    num_dft_runs: int
    num_training_runs: int
    num_md_runs: int
    pk: int | None = None

    def __post_init__(self) -> None:
        """Validate the types; store the sequences as a tuple and a plain dict."""
        _set(self, 'pk', None if self.pk is None else _count(self.pk, 'pk'))
        for name in ('uuid', 'protocol', 'stop_reason'):
            _set(self, name, _text(getattr(self, name), name))
        if isinstance(self.structures, str) or not isinstance(self.structures, Sequence):
            raise RecordError('structures', f'must be a list of strings, got {self.structures!r}')
        _set(self, 'structures', tuple(_text(v, f'structures[{i}]') for i, v in enumerate(self.structures)))
        if not isinstance(self.codes, Mapping):
            raise RecordError('codes', f'must be a mapping of role to code label, got {self.codes!r}')
        _set(self, 'codes', {_text(k, 'codes'): _text(v, f'codes.{k}') for k, v in self.codes.items()})
        _set(self, 'wall_time', _number(self.wall_time, 'wall_time', lower=0))
        for name in ('num_dft_runs', 'num_training_runs', 'num_md_runs'):
            _set(self, name, _count(getattr(self, name), name))

    def to_dict(self) -> dict[str, Any]:
        """Return the facts as a JSON-serialisable mapping."""
        data = {item.name: getattr(self, item.name) for item in fields(self)}
        return {**data, 'structures': list(self.structures), 'codes': dict(self.codes)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CampaignFacts:
        """Return the facts of ``data``, validated."""
        _check_keys(cls, data)
        return cls(**data)


def _list(value: Any) -> Any:
    """Return arrays as lists of floats, anything else unchanged."""
    return value.tolist() if isinstance(value, np.ndarray) else value


@dataclass(frozen=True, eq=False)
class CampaignRecord:
    """Everything the campaign report shows: facts, one record per iteration, parity and uncertainty data.

    ``parity`` (the final committee on the test set) and ``uncertainty`` (the last calibration) are ``None`` when the
    campaign has none. Iteration indices must increase strictly; ``uncertainty.iteration`` must be one of them.
    """

    campaign: CampaignFacts
    iterations: Sequence[IterationRecord] = ()
    parity: ParityData | None = None
    uncertainty: UncertaintyData | None = None

    def __post_init__(self) -> None:
        """Validate the types of the parts and the iteration indices."""
        _set(self, 'iterations', tuple(self.iterations))
        kinds = {'campaign': CampaignFacts, 'parity': ParityData, 'uncertainty': UncertaintyData}
        for name, kind in kinds.items():
            value = getattr(self, name)
            if not isinstance(value, kind) and not (name != 'campaign' and value is None):
                raise RecordError(name, f'must be a {kind.__name__}, got {type(value).__name__}')
        for position, iteration in enumerate(self.iterations):
            if not isinstance(iteration, IterationRecord):
                raise RecordError(f'iterations[{position}]', 'must be an IterationRecord')
            if position and iteration.index <= self.iterations[position - 1].index:
                raise RecordError(f'iterations[{position}].index', 'iteration indices must increase strictly')
        indices = [iteration.index for iteration in self.iterations]
        if self.uncertainty is not None and self.iterations and self.uncertainty.iteration not in indices:
            raise RecordError('uncertainty.iteration', f'{self.uncertainty.iteration} is not one of {indices}')

    def __eq__(self, other: object) -> bool:
        """Return whether ``other`` is a record with the same content."""
        return isinstance(other, CampaignRecord) and self.to_dict() == other.to_dict()

    __hash__ = None

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a JSON-serialisable mapping (lists and numbers only, ``None`` where missing)."""
        return {
            'schema_version': SCHEMA_VERSION,
            'campaign': self.campaign.to_dict(),
            'iterations': [iteration.to_dict() for iteration in self.iterations],
            'parity': None if self.parity is None else self.parity.to_dict(),
            'uncertainty': None if self.uncertainty is None else self.uncertainty.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CampaignRecord:
        """Return the record of ``data`` (as written by :meth:`to_dict`), validated."""
        if not isinstance(data, Mapping):
            raise RecordError('', f'a CampaignRecord must be a mapping, got {type(data).__name__}')
        if data.get('schema_version') != SCHEMA_VERSION:
            raise RecordError('schema_version', f'must be {SCHEMA_VERSION}, got {data.get("schema_version")!r}')
        _check_keys(cls, {key: value for key, value in data.items() if key != 'schema_version'})
        iterations = data.get('iterations', [])
        if not isinstance(iterations, Sequence) or isinstance(iterations, str):
            raise RecordError('iterations', f'must be a list, got {type(iterations).__name__}')
        optional = {'parity': ParityData, 'uncertainty': UncertaintyData}
        return cls(
            campaign=_nested('campaign', lambda: CampaignFacts.from_dict(data['campaign'])),
            iterations=[
                _nested(f'iterations[{i}]', lambda v=value: IterationRecord.from_dict(v))
                for i, value in enumerate(iterations)
            ],
            **{
                name: None if data.get(name) is None else _nested(name, lambda k=kind, v=data[name]: k.from_dict(v))
                for name, kind in optional.items()
            },
        )

    def to_json(self, indent: int | None = 1) -> str:
        """Return the record as JSON text (standard JSON: no NaN or infinity)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> CampaignRecord:
        """Return the record of the JSON ``text`` written by :meth:`to_json`, validated."""
        return cls.from_dict(json.loads(text))
