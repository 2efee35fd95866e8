"""Discrete-event simulation of the parallel (aims-PAX) and the batch scheduling policies, pure (numpy + heapq).

**Parallel** (``ParallelActiveLearningWorkChain``, seed 000 §II B): ``M`` trajectories run MD *segments* of ``t_md``
on ``md_workers`` slots (one per trajectory by default). A segment ends with an uncertainty crossing (probability
``p_cross``, or every ``crossing_every``-th segment since the trajectory's last crossing, or every segment if neither
is set) or without one, and then the trajectory runs the next segment. The crossing frame joins a FIFO queue for
``dft_workers`` DFT slots (``t_dft``, or a duration drawn from a list); the trajectory waits for its label while the
others keep running. A label goes to validation while ``n_valid < valid_ratio · n_labelled`` (aims-PAX: the first
label trains), else to training; the trajectory resumes at once. A training label starts a training chunk
(``t_train``, all labels so far) on the single training worker if it is idle; labels arriving during a chunk cause
exactly one more chunk after it. A failed DFT job (probability ``p_fail``) gives no label: the trajectory restarts
from its checkpoint with a new segment (its crossing count starts again).

**Batch** (``TrainsPotWorkChain``): iterations of {all ``M`` trajectories explore until each has one crossing →
``min(M, labels still wanted)`` frames labelled on the DFT slots → one training chunk}, each stage waiting for the
previous one, until the label budget.

Both stop at the ``label_budget``-th label; work still in flight or queued is abandoned (logged up to that moment).
**Makespan** (both policies): the moment every label is in and the committee has been trained on every training
label, i.e. the later of the last label and the end of the training chunk that includes the last training label
(batch: the end of the last iteration's training chunk). ``last_label_time`` is reported as well.

Durations include ``overhead`` (per task: submission, polling, parsing), during which the slot stays taken. Random
numbers come in independent streams spawned from ``seed`` (crossings per trajectory, DFT failures, DFT durations),
so both policies see the same crossing sequence per trajectory (common random numbers).
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np

from .policy import route_point

RESOURCES = {'md': 'md', 'dft': 'dft', 'dft_failed': 'dft', 'train': 'training'}  # event-log kind → resource
TRAINING = -1  # the ``trajectory`` of training chunks in the event log
MAX_EVENTS = 10_000_000


def _is_integer(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _non_negative(name: str, value) -> None:
    if not _is_number(value) or value < 0:
        raise ValueError(f'`{name}` must be a finite duration >= 0, got {value!r}')


def _at_least(name: str, value, low: int, why: str = '') -> None:
    if not _is_integer(value) or value < low:
        raise ValueError(f'`{name}` must be an integer >= {low}{why}, got {value!r}')


def _fraction(name: str, value, ok: Callable[[float], bool], interval: str, why: str) -> None:
    if not _is_number(value) or not ok(value):
        raise ValueError(f'`{name}` must lie in {interval} ({why}), got {value!r}')


@dataclass(frozen=True)
class TaskDurations:
    """How long the tasks take (any one time unit): an MD segment, a DFT job, a training chunk, plus ``overhead``.

    ``t_dft`` is one duration or a non-empty sequence of durations, from which each DFT job draws one (seeded).
    """

    t_md: float
    t_dft: float | Sequence[float]
    t_train: float
    overhead: float = 0.0

    def __post_init__(self) -> None:
        """Raise ``ValueError`` for a negative or non-finite duration or an empty list of DFT durations."""
        _non_negative('t_md', self.t_md)
        _non_negative('t_train', self.t_train)
        _non_negative('overhead', self.overhead)
        if isinstance(self.t_dft, Real):
            _non_negative('t_dft', self.t_dft)
            return
        if isinstance(self.t_dft, (str, bytes)) or not isinstance(self.t_dft, Iterable):
            raise ValueError(f'`t_dft` must be a duration or a list of durations, got {self.t_dft!r}')
        values = tuple(self.t_dft)
        if not values:
            raise ValueError('`t_dft` must not be an empty list of durations')
        for value in values:
            _non_negative('t_dft', value)
        object.__setattr__(self, 't_dft', values)


@dataclass(frozen=True)
class PolicySettings:
    """The knobs of both policies; ``md_workers=None`` means one MD slot per trajectory.

    Set at most one of ``p_cross`` (a segment crosses with this probability) and ``crossing_every`` (every k-th
    segment since the last crossing crosses); with neither, every segment crosses.
    """

    num_trajectories: int = 4
    dft_workers: int = 1
    md_workers: int | None = None
    valid_ratio: float = 0.1
    p_cross: float | None = None
    crossing_every: int | None = None
    p_fail: float = 0.0
    label_budget: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        """Raise ``ValueError`` naming the first unusable setting."""
        _at_least('num_trajectories', self.num_trajectories, 1)
        _at_least('dft_workers', self.dft_workers, 1, ' (no DFT could run with fewer)')
        if self.md_workers is not None:
            _at_least('md_workers', self.md_workers, 1, ' or None (no MD could run with fewer)')
        _at_least('label_budget', self.label_budget, 1)
        _at_least('seed', self.seed, 0)
        _fraction('valid_ratio', self.valid_ratio, lambda v: 0 <= v < 1, '[0, 1)', '1 would train on nothing')
        if self.p_cross is not None and self.crossing_every is not None:
            raise ValueError('set only one of `p_cross` and `crossing_every`')
        if self.p_cross is not None:
            _fraction('p_cross', self.p_cross, lambda v: 0 < v <= 1, '(0, 1]', 'at 0 no segment would ever cross')
        if self.crossing_every is not None:
            _at_least('crossing_every', self.crossing_every, 1)
        _fraction('p_fail', self.p_fail, lambda v: 0 <= v < 1, '[0, 1)', 'at 1 no label would ever arrive')

    @property
    def md_slots(self) -> int:
        """Return the MD slots: ``md_workers``, or one per trajectory."""
        return self.num_trajectories if self.md_workers is None else self.md_workers


@dataclass
class SimulationResult:
    """What a simulated campaign did; ``log`` holds ``(start, end, kind, trajectory)`` per task.

    ``kind`` is ``md``, ``dft``, ``dft_failed`` or ``train`` (trajectory ``-1``); ``busy`` and ``utilisation``
    (busy / (slots × makespan)) are keyed by resource: ``md``, ``dft``, ``training``. ``segments`` counts the MD
    segments that ended, ``iterations`` the batch iterations (0 for the parallel policy).
    """

    policy: str
    makespan: float
    last_label_time: float
    labels: int
    train_labels: int
    valid_labels: int
    failures: int
    segments: int
    training_chunks: int
    iterations: int
    busy: dict[str, float]
    utilisation: dict[str, float]
    log: list[tuple[float, float, str, int]] = field(repr=False)


class _Pool:
    """Slots taking tasks first in, first out; every task started is logged (its entry is a mutable list)."""

    def __init__(self, sim: _Simulation, kind: str, slots: int, duration: Callable[[], float]) -> None:
        self.sim, self.kind, self.slots, self.duration = sim, kind, slots, duration
        self.queue, self.active, self.open = deque(), 0, True

    def submit(self, trajectory: int, done: Callable[[list], None]) -> None:
        self.queue.append((trajectory, done))
        self._start()

    def _start(self) -> None:
        while self.open and self.queue and self.active < self.slots:
            trajectory, done = self.queue.popleft()
            start = self.sim.now
            entry = [start, start + self.duration(), self.kind, trajectory]
            self.sim.log.append(entry)
            self.active += 1
            self.sim.schedule(entry[1], self._finish, entry, done)

    def _finish(self, entry: list, done: Callable[[list], None]) -> None:
        if not self.open:
            return
        self.active -= 1
        done(entry)
        self._start()


class _Simulation:
    """The shared machinery: event heap, slots, random streams, label routing and the stop at the budget."""

    def __init__(self, durations: TaskDurations, settings: PolicySettings) -> None:
        self.durations, self.settings = durations, settings
        self.now, self.log, self._heap, self._count = 0.0, [], [], 0
        streams = np.random.SeedSequence(settings.seed).spawn(settings.num_trajectories + 2)
        self.cross_rngs = [np.random.default_rng(stream) for stream in streams[2:]]
        self.fail_rng, self.dft_rng = np.random.default_rng(streams[0]), np.random.default_rng(streams[1])
        self.since_crossing = [0] * settings.num_trajectories
        over = durations.overhead
        self.md = _Pool(self, 'md', settings.md_slots, lambda: durations.t_md + over)
        self.dft = _Pool(self, 'dft', settings.dft_workers, self._dft_duration)
        self.trainer = _Pool(self, 'train', 1, lambda: durations.t_train + over)
        self.n_train = self.n_valid = self.failures = self.segments = self.chunks = self.iterations = 0
        self.stop_time: float | None = None
        self.train_end, self.chunk_requested = 0.0, False

    def _dft_duration(self) -> float:
        t_dft = self.durations.t_dft
        value = t_dft[self.dft_rng.integers(len(t_dft))] if isinstance(t_dft, tuple) else t_dft
        return float(value) + self.durations.overhead

    def schedule(self, time: float, callback: Callable, *args) -> None:
        heapq.heappush(self._heap, (time, self._count, callback, args))
        self._count += 1

    def run(self) -> None:
        for _ in range(MAX_EVENTS):
            if not self._heap:
                return
            self.now, _, callback, args = heapq.heappop(self._heap)
            callback(*args)
        raise RuntimeError(f'the simulation did not end within {MAX_EVENTS} events')

    def crosses(self, trajectory: int) -> bool:
        """Return whether the segment of ``trajectory`` that just ended crossed the threshold."""
        self.segments += 1
        self.since_crossing[trajectory] += 1
        if self.settings.p_cross is not None:
            crossed = bool(self.cross_rngs[trajectory].random() < self.settings.p_cross)
        else:
            crossed = self.since_crossing[trajectory] >= (self.settings.crossing_every or 1)
        if crossed:
            self.since_crossing[trajectory] = 0
        return crossed

    def labelled(self, entry: list) -> str | None:
        """Return ``train``/``valid`` for the DFT job of ``entry``, or ``None`` if it failed; stop at the budget."""
        if self.settings.p_fail and self.fail_rng.random() < self.settings.p_fail:
            entry[2] = 'dft_failed'
            self.failures += 1
            return None
        split = route_point(self.n_valid, self.n_train + self.n_valid, self.settings.valid_ratio)
        if split == 'valid':
            self.n_valid += 1
        else:
            self.n_train += 1
        if self.n_train + self.n_valid >= self.settings.label_budget:
            self.stop_time = self.now
            self.md.open = self.dft.open = False
        return split

    def request_training(self) -> None:
        """Ask for a chunk with every label so far, unless one not started yet will include them.

        The chunk is submitted after the other events of this instant, so labels arriving together share it; it
        starts at once on an idle trainer, else once after the running chunk.
        """
        if not self.trainer.queue and not self.chunk_requested:
            self.chunk_requested = True
            self.schedule(self.now, self._submit_chunk)

    def _submit_chunk(self) -> None:
        self.chunk_requested = False
        self.train()

    def train(self, done: Callable[[list], None] | None = None) -> None:
        """Start a training chunk (after those queued); ``done`` runs when it ends."""

        def finished(entry: list) -> None:
            self.chunks += 1
            self.train_end = entry[1]
            if done:
                done(entry)

        self.trainer.submit(TRAINING, finished)

    def result(self, policy: str, makespan: float) -> SimulationResult:
        """Return the result, the MD and DFT work still in flight at the stop cut there (training goes on)."""
        stop = self.stop_time
        log = [
            (start, end if kind == 'train' else min(end, stop), kind, trajectory)
            for start, end, kind, trajectory in self.log
            if kind == 'train' or start < stop
        ]
        busy = dict.fromkeys(('md', 'dft', 'training'), 0.0)
        for start, end, kind, _ in log:
            busy[RESOURCES[kind]] += end - start
        slots = {'md': self.settings.md_slots, 'dft': self.settings.dft_workers, 'training': 1}
        utilisation = {name: busy[name] / (slots[name] * makespan) if makespan > 0 else 0.0 for name in busy}
        counts = (self.n_train + self.n_valid, self.n_train, self.n_valid, self.failures, self.segments, self.chunks)
        return SimulationResult(policy, makespan, stop, *counts, self.iterations, busy, utilisation, sorted(log))


def simulate_parallel(durations: TaskDurations, settings: PolicySettings) -> SimulationResult:
    """Return the simulated campaign of the parallel (aims-PAX) policy; see the module docstring for the rules."""
    sim = _Simulation(durations, settings)

    def segment_done(entry: list) -> None:
        trajectory = entry[3]
        if sim.crosses(trajectory):
            sim.dft.submit(trajectory, dft_done)
        else:
            sim.md.submit(trajectory, segment_done)

    def dft_done(entry: list) -> None:
        if sim.labelled(entry) == 'train':
            sim.request_training()
        if sim.stop_time is None:
            sim.md.submit(entry[3], segment_done)

    for trajectory in range(settings.num_trajectories):
        sim.md.submit(trajectory, segment_done)
    sim.run()
    return sim.result('parallel', max(sim.stop_time, sim.train_end))


def simulate_batch(durations: TaskDurations, settings: PolicySettings) -> SimulationResult:
    """Return the simulated campaign of the batch (TrainsPot) policy: explore → label → train, until the budget."""
    sim = _Simulation(durations, settings)
    pending = {'explore': 0, 'label': 0}

    def iterate(_entry: list | None = None) -> None:
        if sim.n_train + sim.n_valid >= settings.label_budget:
            return
        sim.iterations += 1
        pending['explore'] = settings.num_trajectories
        for trajectory in range(settings.num_trajectories):
            sim.md.submit(trajectory, segment_done)

    def segment_done(entry: list) -> None:
        if not sim.crosses(entry[3]):
            sim.md.submit(entry[3], segment_done)
            return
        pending['explore'] -= 1
        if pending['explore'] == 0:
            wanted = min(settings.num_trajectories, settings.label_budget - sim.n_train - sim.n_valid)
            pending['label'] = wanted
            for trajectory in range(wanted):
                sim.dft.submit(trajectory, dft_done)

    def dft_done(entry: list) -> None:
        sim.labelled(entry)
        pending['label'] -= 1
        if pending['label'] == 0:
            sim.train(iterate)

    iterate()
    sim.run()
    return sim.result('batch', sim.train_end)


@dataclass(frozen=True)
class ScalingPoint:
    """One row of a strong-scaling study: ``makespan`` is the mean over the repeats."""

    workers: int
    trajectories: int
    makespan: float
    speedup: float
    efficiency: float


def parallel_efficiency(
    durations: TaskDurations,
    base_settings: PolicySettings,
    workers: Sequence[int] = (1, 2, 4, 8, 16, 32),
    trajectories_per_worker: int | None = 2,
    policy: str = 'parallel',
    repeats: int = 1,
) -> list[ScalingPoint]:
    """Return the strong scaling of ``policy`` over the DFT ``workers``: speed-up ``T(1)/T(W)``, efficiency ``/W``.

    Kept fixed: the durations, ``label_budget`` (strong scaling, as aims-PAX Fig. 3), ``valid_ratio``, the crossing
    and failure laws, and ``md_workers`` if set (else one MD slot per trajectory). Scaled: ``num_trajectories =
    trajectories_per_worker · W`` so the DFT workers have frames to label (``None`` keeps ``base_settings``'
    trajectories fixed, as Fig. 3 does with 32). ``T(1)`` is always simulated at ``W = 1``; each makespan is the mean
    over ``repeats`` seeds ``seed, seed + 1, …``.
    """
    simulate = {'parallel': simulate_parallel, 'batch': simulate_batch}.get(policy)
    if simulate is None:
        raise ValueError(f"`policy` must be 'parallel' or 'batch', got {policy!r}")
    _at_least('repeats', repeats, 1)
    for count in workers:
        _at_least('workers', count, 1)
    if trajectories_per_worker is not None:
        _at_least('trajectories_per_worker', trajectories_per_worker, 1, ' or None')

    def mean_makespan(count: int) -> tuple[int, float]:
        trajectories = (
            base_settings.num_trajectories if trajectories_per_worker is None else trajectories_per_worker * count
        )
        settings = dataclasses.replace(base_settings, dft_workers=count, num_trajectories=trajectories)
        seeds = range(base_settings.seed, base_settings.seed + repeats)
        runs = [simulate(durations, dataclasses.replace(settings, seed=seed)).makespan for seed in seeds]
        return trajectories, float(np.mean(runs))

    reference = mean_makespan(1)[1]
    points = []
    for count in workers:
        trajectories, makespan = mean_makespan(count)
        speedup = reference / makespan if makespan > 0 else math.inf
        points.append(ScalingPoint(count, trajectories, makespan, speedup, speedup / count))
    return points


def max_concurrency(log: Iterable[tuple], kinds: Iterable[str], trajectory: int | None = None) -> int:
    """Return the most tasks of ``kinds`` (of one ``trajectory`` if given) running at once, intervals half-open."""
    kinds = set(kinds)
    edges = []
    for start, end, kind, owner in log:
        if kind in kinds and (trajectory is None or owner == trajectory) and end > start:
            edges += [(start, 1), (end, -1)]
    running = peak = 0
    for _, step in sorted(edges):
        running += step
        peak = max(peak, running)
    return peak
