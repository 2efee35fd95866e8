"""Concurrent evaluation of the members of a committee, torch's intra-op threads split between them.

A small MACE model keeps the cores only partly busy: its tensors are small, so its ops scale poorly over torch's
intra-op threads (one model on 2 threads is only ~1.2-1.6x faster than on 1). The members of a committee are
independent, so they are evaluated at the same time in a thread pool (torch releases the GIL inside its ops), each
worker thread with its share of torch's threads: the cores stay busy with coarse-grained work. Every member computes
exactly what it computes alone, so the predictions are those of the members one after the other (up to the order of
the floating-point sums of a different thread count).

What was measured and not adopted (``benchmarks/committee_eval.py``, 2 cores): evaluating the members in one call with
their weights stacked (``torch.func.stack_module_state`` + ``functional_call`` + ``vmap``) needs MACE patched (its
``prepare_graph`` calls ``requires_grad_`` and its ``scatter_sum`` is in place, both refused under ``vmap``) and then
saves only ~5%: the cost of a member is arithmetic on its own weights, not per-op overhead. The work shared by the
members (edge vectors, spherical harmonics, radial basis) is ~12% of a member: not worth re-implementing MACE's forward.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ('attempt', 'member_pool', 'run_members')


def worker_threads(num_members: int, threads: int) -> tuple[int, int]:
    """Return the workers evaluating ``num_members`` members at once with ``threads`` in all, and the threads of each.

    One worker per member, at most one per thread; the threads are split evenly between the workers.
    """
    workers = max(1, min(num_members, threads))
    return workers, max(1, threads // workers)


@contextlib.contextmanager
def member_pool(num_members: int) -> Iterator[ThreadPoolExecutor | None]:
    """Yield a thread pool evaluating ``num_members`` members at once, or ``None`` when one at a time is all that fits.

    The pool's threads share torch's intra-op threads of the calling thread, whose count is restored on exit.
    """
    import torch

    threads = torch.get_num_threads()
    workers, threads_per_worker = worker_threads(num_members, threads)
    if workers < 2:
        yield None
        return
    try:
        with ThreadPoolExecutor(workers, 'committee', torch.set_num_threads, (threads_per_worker,)) as pool:
            yield pool
    finally:
        torch.set_num_threads(threads)  # the count new threads start with is global: give it back


def attempt(function: Callable[..., Any], *args: Any) -> Any:
    """Return ``function(*args)``, or the exception it raised (for the caller to raise naming the member)."""
    try:
        return function(*args)
    except Exception as exception:  # whatever the model library raises
        return exception


def run_members(pool: ThreadPoolExecutor | None, tasks: Mapping[int, Callable[[], Any]]) -> dict[int, Any]:
    """Return what every task of ``tasks`` (member index to task) returns, or the exception it raised.

    The tasks run in ``pool``, or one after the other without one; every task runs, even after one has failed.
    """
    if pool is None:
        return {member: attempt(task) for member, task in tasks.items()}
    futures = {member: pool.submit(attempt, task) for member, task in tasks.items()}
    return {member: future.result() for member, future in futures.items()}
