"""At most N children at once, and the work chain wakes up as soon as *any* of its running children ends.

The local scheduler starts every job at once, so a work chain throttles its own children. A plain work chain step
waits for *all* the children it returns, which leaves a freed slot idle until the slowest child ends. A work chain
that uses :class:`ThrottleMixin` keeps a queue of jobs in its context and, in a loop, starts jobs until the slots are
full, sleeps until the first of its running children ends (:meth:`ThrottleMixin.start_jobs`), then collects every
child that has ended meanwhile (:meth:`ThrottleMixin.collect_ended`) and refills the slots. Optionally
(:attr:`ThrottleMixin.free_slot_at_job_end`) a slot is freed as soon as the scheduler job of its child ends, so that
the next child is prepared and submitted while the previous one retrieves and parses its outputs.

How "wake on the first" works with aiida-core's awaitables: :meth:`~ThrottleMixin.start_jobs` returns one awaitable
per running child, all under the context key :data:`WAKE_KEY`. The mixin asks the runner once per child (not once
per step) to call it back when that child ends; the first call-back drops every remaining :data:`WAKE_KEY` awaitable
and resumes the work chain (if it awaits nothing else). The awaitables are checkpointed by aiida-core as usual: a work
chain reloaded while waiting (a daemon restart) registers them again, and a child that ended while nobody listened
wakes it at once. A call-back for a child the work chain is not waiting for (it ended while a step ran) does nothing:
:meth:`~ThrottleMixin.collect_ended` reads the state of every running child from the database, so no child is missed.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from aiida import orm
from aiida.engine import ProcessState, ToContext
from aiida.engine.processes.workchains.awaitable import Awaitable, AwaitableAction, AwaitableTarget

DEFAULT_MAX_CONCURRENT_QUEUED = 100
"""Children at once on a computer with a real scheduler (its queue does the throttling)."""

ENDED_STATES = ('finished', 'excepted', 'killed')

JOB_ENDED_STATES = ('stashing', 'retrieving', 'parsing')
"""States of a calculation job whose scheduler job has ended."""

WAKE_KEY = 'throttle_wake'
"""Context key under which the work chain awaits its running children; the first that ends wakes it."""


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


def dft_workers_error(settings: dict, labelling, where: str = 'active_learning') -> str | None:
    """Return a message if ``settings['max_dft_workers']`` exceeds what the labelling code's computer runs at once.

    ``where`` is the input that holds the settings, for the message.
    """
    wanted, code = settings['max_dft_workers'], labelling.get('code')
    if wanted is None or code is None:
        return None
    options = labelling['options'].get_dict() if 'options' in labelling else {}
    allowed = default_max_concurrent(code, options)
    if wanted > allowed:
        return (
            f'`{where}.max_dft_workers` is {wanted} but computer {code.computer.label} runs at most {allowed} '
            'DFT jobs at once (its cores over the MPI ranks of one job)'
        )
    return None


def wake_on_first(pks: list[int]) -> ToContext:
    """Return the context entries of a step that ends when the first of the processes ``pks`` ends.

    Only for a work chain that uses :class:`ThrottleMixin` (which handles the :data:`WAKE_KEY` awaitables).
    """
    return ToContext(
        **{
            f'{WAKE_KEY}.{pk}': Awaitable(
                pk=pk, action=AwaitableAction.ASSIGN, target=AwaitableTarget.PROCESS, outputs=False
            )
            for pk in pks
        }
    )


def children_past_their_jobs(pks: list[int]) -> set[int]:
    """Return the running processes among ``pks`` whose scheduler jobs have all ended.

    A calculation job is past its job when it stashes, retrieves or parses its outputs (or has ended); a workflow
    when every calculation job it called is past its job (and it called at least one).
    """
    states = orm.QueryBuilder().append(
        orm.CalcJobNode, filters={'id': {'in': pks}}, project=['id', 'attributes.state', 'attributes.process_state']
    )
    called = orm.QueryBuilder().append(orm.WorkflowNode, filters={'id': {'in': pks}}, tag='workflow', project='id')
    called.append(orm.CalcJobNode, with_incoming='workflow', project=['attributes.state', 'attributes.process_state'])
    past: dict[int, list[bool]] = {}
    for pk, state, process_state in [*states.all(), *called.all()]:
        past.setdefault(pk, []).append(state in JOB_ENDED_STATES or process_state in ENDED_STATES)
    return {pk for pk, flags in past.items() if all(flags)}


def _is_wake(awaitable: Awaitable) -> bool:
    """Return whether ``awaitable`` is one of the "first of these children" awaitables of :class:`ThrottleMixin`."""
    return awaitable.key.startswith(f'{WAKE_KEY}.')


class ThrottleMixin:
    """Start queued jobs in at most ``ctx.max_concurrent`` slots; wake as soon as any running child ends.

    The work chain sets ``ctx.max_concurrent`` and calls :meth:`queue_jobs` once; its outline loops
    ``while_(cls.has_jobs)(step that returns self.start_jobs(build), step that calls self.collect_ended(collect))``.
    A job is any JSON-serialisable value (a list of frame indices, a member number). Put the mixin before
    ``WorkChain`` among the bases: it extends how the work chain listens to its children (see the module docstring).
    A step may return other awaitables together with :meth:`start_jobs`' (``{**self.start_jobs(build), ...}``): the
    work chain then resumes once all of those and the first of the running children have ended.

    With :attr:`free_slot_at_job_end`, a slot is freed as soon as the scheduler job of its child has ended (see
    :func:`children_past_their_jobs`), not when the child has retrieved, parsed and returned its outputs: the next
    child gets ready meanwhile. While waiting, the work chain then also looks at the jobs of its children every
    :attr:`throttle_poll_seconds` (there is no event for a job's end). A child that starts another calculation after
    its slot was given away (a restart by an error handler) runs alongside until it ends: its slot counts again.
    """

    free_slot_at_job_end: bool = False
    """Free a slot when the scheduler job of its child ends, rather than when the child ends."""

    throttle_poll_seconds: float = 1.0
    """Seconds between two looks at the running children's jobs, with :attr:`free_slot_at_job_end`."""

    def queue_jobs(self, jobs: list[Any]) -> None:
        """Queue ``jobs`` to start, in order."""
        self.ctx.pending, self.ctx.running = list(jobs), []

    def has_jobs(self) -> bool:
        """Return whether jobs are queued or running."""
        return bool(self.ctx.pending or self.ctx.running)

    def busy_slots(self) -> int:
        """Return how many slots the running children hold."""
        pks = [pk for _, pk in self.ctx.running]
        return len(pks) - (len(children_past_their_jobs(pks)) if self.free_slot_at_job_end and pks else 0)

    def start_jobs(self, build: Callable[[Any], Any]) -> ToContext:
        """Submit the builder ``build(job)`` of queued jobs until the slots are full; wait for the first to end."""
        busy = self.busy_slots() if self.ctx.pending else 0
        while self.ctx.pending and busy < self.ctx.max_concurrent:
            job = self.ctx.pending.pop(0)
            self.ctx.running.append((job, self.submit(build(job)).pk))
            busy += 1
        self.ctx.pop(WAKE_KEY, None)
        return wake_on_first([pk for _, pk in self.ctx.running])

    def collect_ended(self, collect: Callable[[Any, orm.ProcessNode], None]) -> None:
        """Call ``collect(job, child)`` for every child that has ended, in the order they started; free their slots."""
        self.ctx.pop(WAKE_KEY, None)
        pks = [pk for _, pk in self.ctx.running]
        query = orm.QueryBuilder().append(
            orm.ProcessNode, filters={'id': {'in': pks}}, project=['id', 'attributes.process_state']
        )
        ended = {pk for pk, state in query.all() if state in ENDED_STATES}
        for job, pk in self.ctx.running:
            if pk in ended:
                collect(job, orm.load_node(pk))
        self.ctx.running = [(job, pk) for job, pk in self.ctx.running if pk not in ended]

    def _action_awaitables(self) -> None:
        """Listen to the children the work chain awaits: the wake awaitables here, any other as aiida-core does.

        A child is listened to once per process instance, however many steps await it; the set of listened children
        is not checkpointed, so a reloaded work chain listens to them again (and looks at their jobs again).
        """
        awaitables = self._awaitables
        listened = self.__dict__.setdefault('_throttle_listened', set())
        wakes = list(filter(_is_wake, awaitables))
        for awaitable in wakes:
            if awaitable.pk not in listened:
                listened.add(awaitable.pk)
                callback = functools.partial(self.call_soon, self._on_throttled_child_ended, awaitable.pk)
                self.runner.call_on_process_finish(awaitable.pk, callback)
        if wakes and self.free_slot_at_job_end and self.ctx.pending:
            self._poll_jobs_later(token=object())
        self._awaitables = [awaitable for awaitable in awaitables if not _is_wake(awaitable)]
        try:
            super()._action_awaitables()
        finally:
            self._awaitables = awaitables

    def _waiting_on_children(self) -> list[Awaitable]:
        """Return the wake awaitables the work chain waits on now (none once it runs or has ended)."""
        if self.has_terminated():
            return []
        return [awaitable for awaitable in self._awaitables if _is_wake(awaitable)]

    def _on_throttled_child_ended(self, pk: int) -> None:
        """Wake the work chain if it awaits child ``pk``."""
        self.__dict__.setdefault('_throttle_listened', set()).discard(pk)
        if any(awaitable.pk == pk for awaitable in self._waiting_on_children()):
            self.logger.info('child %d ended: waking up to refill its slot', pk)
            self._wake_up()
        # otherwise it ended while a step ran: `collect_ended` finds it in the database

    def _poll_jobs_later(self, token: object) -> None:
        """Look at the children's jobs in :attr:`throttle_poll_seconds`, unless another look replaces this one."""
        self.__dict__['_throttle_poll'] = token
        self.loop.call_later(self.throttle_poll_seconds, self.call_soon, self._poll_jobs, token)

    def _poll_jobs(self, token: object) -> None:
        """Wake the work chain if a slot was freed by a job's end and a job is queued; else look again later."""
        if self.__dict__.get('_throttle_poll') is not token or not self._waiting_on_children():
            return
        if self.ctx.pending and self.busy_slots() < self.ctx.max_concurrent:
            self.logger.info('a job ended: waking up to refill its slot')
            self._wake_up()
        else:
            self._poll_jobs_later(token)

    def _wake_up(self) -> None:
        """Drop the wake awaitables and resume the work chain if it awaits nothing else."""
        self.__dict__['_throttle_poll'] = None
        self._awaitables = [awaitable for awaitable in self._awaitables if not _is_wake(awaitable)]
        self.ctx.pop(WAKE_KEY, None)
        self._update_process_status()
        if self.state == ProcessState.WAITING and not self._awaitables:
            self.resume()
