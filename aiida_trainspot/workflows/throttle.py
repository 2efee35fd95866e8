"""At most N children at once: a new one starts as the earliest running one ends.

The local scheduler starts every job at once, and a work chain step waits for all the children it returns. A work
chain that uses :class:`ThrottleMixin` keeps a queue of jobs in its context and, in a loop, starts jobs until the
slots are full, waits for the earliest running child, then collects every child that has ended meanwhile.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aiida import orm
from aiida.engine import ToContext

DEFAULT_MAX_CONCURRENT_QUEUED = 100
"""Children at once on a computer with a real scheduler (its queue does the throttling)."""

ENDED_STATES = ('finished', 'excepted', 'killed')


def default_max_concurrent(code: orm.AbstractCode, options: dict) -> int:
    """Return how many jobs of ``code`` fit at once: the cores over the MPI ranks of one job on a local computer.

    A computer whose scheduler queues jobs (SLURM, PBS...) gets :data:`DEFAULT_MAX_CONCURRENT_QUEUED`: its queue
    decides what runs.
    """
    computer = code.computer
    if computer.scheduler_type != 'core.direct':
        return DEFAULT_MAX_CONCURRENT_QUEUED
    is_this_machine = computer.hostname in ('localhost', '127.0.0.1') or computer.transport_type == 'core.local'
    cores = (os.cpu_count() if is_this_machine else None) or computer.get_default_mpiprocs_per_machine() or 1
    resources = options.get('resources', {})
    ranks = resources.get('num_machines', 1) * (
        resources.get('num_mpiprocs_per_machine') or computer.get_default_mpiprocs_per_machine() or 1
    )
    return max(1, cores // ranks)


def validate_max_concurrent(value: orm.Int | None, _) -> str | None:
    """Return a message unless ``value`` is at least 1."""
    if value is not None and value.value < 1:
        return f'`max_concurrent` must be at least 1, got {value.value}'
    return None


class ThrottleMixin:
    """Start queued jobs in at most ``ctx.max_concurrent`` slots; collect the children as they end.

    The work chain sets ``ctx.max_concurrent`` and calls :meth:`queue_jobs` once; its outline loops
    ``while_(cls.has_jobs)(step that returns self.start_jobs(build), step that calls self.collect_ended(collect))``.
    A job is any JSON-serialisable value (a list of frame indices, a member number).
    """

    def queue_jobs(self, jobs: list[Any]) -> None:
        """Queue ``jobs`` to start, in order."""
        self.ctx.pending, self.ctx.running = list(jobs), []

    def has_jobs(self) -> bool:
        """Return whether jobs are queued or running."""
        return bool(self.ctx.pending or self.ctx.running)

    def start_jobs(self, build: Callable[[Any], Any]) -> ToContext:
        """Submit the builder ``build(job)`` of queued jobs until the slots are full; wait for the earliest."""
        while self.ctx.pending and len(self.ctx.running) < self.ctx.max_concurrent:
            job = self.ctx.pending.pop(0)
            self.ctx.running.append((job, self.submit(build(job)).pk))
        return ToContext(earliest_running=orm.load_node(self.ctx.running[0][1]))

    def collect_ended(self, collect: Callable[[Any, orm.ProcessNode], None]) -> None:
        """Call ``collect(job, child)`` for every child that has ended, and free its slot."""
        pks = [pk for _, pk in self.ctx.running]
        query = orm.QueryBuilder().append(
            orm.ProcessNode, filters={'id': {'in': pks}}, project=['id', 'attributes.process_state']
        )
        ended = {pk for pk, state in query.all() if state in ENDED_STATES}
        for job, pk in self.ctx.running:
            if pk in ended:
                collect(job, orm.load_node(pk))
        self.ctx.running = [(job, pk) for job, pk in self.ctx.running if pk not in ended]
