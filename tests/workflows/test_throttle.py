"""``ThrottleMixin``: a slot freed by any child is refilled at once, even while an earlier child still runs.

The children are real ``core.arithmetic.add`` jobs on localhost that sleep first; the facts checked are orderings of
node creation and last-change times, not speeds.
"""

import pytest
from aiida import orm
from aiida.common.datastructures import CalcJobState
from aiida.common.links import LinkType
from aiida.engine import ProcessState, WorkChain, run_get_node, while_
from aiida.plugins import CalculationFactory

from aiida_trainspot.workflows.throttle import WAKE_KEY, ThrottleMixin, children_past_their_jobs

pytestmark = pytest.mark.aiida

ArithmeticAddCalculation = CalculationFactory('core.arithmetic.add')


class SleepersWorkChain(ThrottleMixin, WorkChain):
    """Run one job per entry of ``seconds`` (it sleeps that long), at most ``max_concurrent`` at once."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('code', valid_type=orm.AbstractCode, help='A `core.arithmetic.add` code.')
        spec.input('seconds', valid_type=orm.List, help='How long each job sleeps.')
        spec.input('max_concurrent', valid_type=orm.Int, help='Most jobs at once.')
        spec.input('times', valid_type=orm.Str, help='File the jobs append their start (1) and end (-1) times to.')
        spec.outline(cls.setup, while_(cls.has_jobs)(cls.run_jobs, cls.inspect_jobs), cls.results)
        spec.output('collected', valid_type=orm.List, help='The jobs in the order they were collected.')

    def setup(self):
        self.ctx.max_concurrent = self.inputs.max_concurrent.value
        self.queue_jobs(list(range(len(self.inputs.seconds))))
        self.ctx.collected = []

    def run_jobs(self):
        return self.start_jobs(self._builder)

    def _builder(self, job: int):
        builder = ArithmeticAddCalculation.get_builder()
        builder.code, builder.x, builder.y = self.inputs.code, orm.Int(job), orm.Int(0)
        builder.metadata.options.prepend_text = (
            f'echo "1 $(date +%s.%N)" >> {self.inputs.times.value}; sleep {self.inputs.seconds[job]}'
        )
        builder.metadata.options.append_text = f'echo "-1 $(date +%s.%N)" >> {self.inputs.times.value}'
        builder.metadata.options.resources = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        builder.metadata.call_link_label = f'job_{job}'
        return builder

    def inspect_jobs(self):
        assert WAKE_KEY not in self.ctx, 'the wake awaitables are gone once the work chain runs again'
        self.collect_ended(lambda job, child: self.ctx.collected.append(job))

    def results(self):
        self.out('collected', orm.List(self.ctx.collected).store())


class JobSlotSleepersWorkChain(SleepersWorkChain):
    """The same, freeing a slot as soon as the job of its child ends."""

    free_slot_at_job_end = True


def jobs_at_once(path) -> tuple[int, int]:
    """Return the most jobs that ran at the same instant, from the times they wrote, and how many ran."""
    events = sorted(
        (float(time), int(change)) for change, time in (line.split() for line in path.read_text().split('\n') if line)
    )
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak, sum(change == 1 for _, change in events)


@pytest.mark.parametrize('workchain', [SleepersWorkChain, JobSlotSleepersWorkChain])
def test_a_short_jobs_slot_is_refilled_while_a_long_job_runs(aiida_code_installed, tmp_path, workchain):
    code = aiida_code_installed(default_calc_job_plugin='core.arithmetic.add', filepath_executable='/bin/bash')
    times = tmp_path / 'times'
    results, node = run_get_node(
        workchain, code=code, seconds=orm.List([15, 0, 0]), max_concurrent=orm.Int(2), times=orm.Str(str(times))
    )
    assert node.is_finished_ok, node.exit_message
    jobs = {link.link_label: link.node for link in node.base.links.get_outgoing(node_class=orm.CalcJobNode).all()}
    assert all(job.is_finished_ok for job in jobs.values())
    long, short, third = jobs['job_0'], jobs['job_1'], jobs['job_2']
    if not workchain.free_slot_at_job_end:
        assert short.mtime < third.ctime, 'the third job waited for the short one to end'
    assert third.ctime < long.mtime, 'the slot of the short job was refilled before the long job ended'
    assert sorted(results['collected'].get_list()) == [0, 1, 2], 'every job collected once'
    assert results['collected'][0] == 1, 'the short job was collected first'
    assert jobs_at_once(times) == (2, 3), 'never more than two jobs at once'


def test_children_past_their_jobs(aiida_localhost):
    """A slot is free once every calculation job of a child has left the scheduler (and it called at least one)."""

    def calcjob(state, parent=None, process_state=ProcessState.WAITING):
        node = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:core.arithmetic.add')
        node.set_process_state(process_state)
        if state is not None:
            node.set_state(state)
        if parent is not None:
            node.base.links.add_incoming(parent, LinkType.CALL_CALC, 'call')
        return node.store()

    def workflow(*jobs):
        node = orm.WorkflowNode().store()
        for job in jobs:
            state, process_state = job if isinstance(job, tuple) else (job, ProcessState.WAITING)
            calcjob(state, node, process_state)
        return node

    finished = (None, ProcessState.FINISHED)
    nodes = {
        'running job': workflow(CalcJobState.WITHSCHEDULER),
        'retrieving': workflow(CalcJobState.RETRIEVING),
        'parsing after a finished one': workflow(finished, CalcJobState.PARSING),
        'no job yet': workflow(),
        'restarted': workflow(finished, CalcJobState.SUBMITTING),
        'calcjob stashing': calcjob(CalcJobState.STASHING),
        'calcjob uploading': calcjob(CalcJobState.UPLOADING),
    }
    past = children_past_their_jobs([node.pk for node in nodes.values()])
    assert {name for name, node in nodes.items() if node.pk in past} == {
        'retrieving',
        'parsing after a finished one',
        'calcjob stashing',
    }
