"""Steps of ``test_campaign_daemon.py`` that need a loaded AiiDA profile, run in a subprocess with its own AIIDA_PATH.

``python campaign_daemon_steps.py STEP PROFILE [ARGUMENT [WHEN]]``; each step prints one JSON line (its last line of
output) that the test asserts on. Steps: ``start`` (the daemon), ``crash PK WHEN`` (wait until the campaign is at
WHEN, SIGKILL the daemon, start it again), ``finish PK`` (wait until the campaign ends), ``stop [PK]`` (kill an
unfinished campaign, stop the daemon), ``facts PK`` (what the provenance says), ``readback UUID`` (the imported one).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
import time

import psutil
from aiida import load_profile, orm
from aiida.common.links import LinkType
from aiida.engine.daemon.client import get_daemon_client

DAEMON_TIMEOUT = 180
"""Seconds for the daemon to answer: a loaded machine answers slowly (aiida-core's default is a few seconds)."""

POLL = 1.0
PW = 'aiida.calculations:quantumespresso.pw'
PW_BASE = 'aiida.workflows:quantumespresso.pw.base'
MACE_TRAIN = 'aiida.calculations:trainspot.mace_train'
LABELLING = 'aiida.workflows:trainspot.labelling'


def states(process_type: str) -> list[tuple[int, str | None, int | None, str | None]]:
    """Return (pk, process state, exit status, scheduler job id) of every process of ``process_type``, fresh."""
    query = orm.QueryBuilder().append(
        orm.ProcessNode,
        filters={'process_type': process_type},
        project=['id', 'attributes.process_state', 'attributes.exit_status', 'attributes.job_id'],
    )
    return sorted(tuple(row) for row in query.all())


def campaign_state(pk: int) -> tuple[str | None, int | None]:
    """Return the process state and exit status of the campaign, read from the database (not a cached node)."""
    query = orm.QueryBuilder().append(
        orm.ProcessNode, filters={'id': pk}, project=['attributes.process_state', 'attributes.exit_status']
    )
    return tuple(query.one())


def daemon_pids() -> tuple[int | None, list[int]]:
    """Return the PID of the circus arbiter and those of the daemon workers, from the daemon client."""
    client = get_daemon_client()
    info = client.get_worker_info(timeout=DAEMON_TIMEOUT).get('info', {})
    workers = sorted(int(value.get('pid', key)) if isinstance(value, dict) else int(key) for key, value in info.items())
    return client.get_daemon_pid(), workers


def is_gone(pid: int) -> bool:
    """Return whether process ``pid`` no longer runs (a zombie waiting to be reaped counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def start() -> dict:
    """Start the daemon with one worker."""
    client = get_daemon_client()
    client.start_daemon(number_workers=1, timeout=DAEMON_TIMEOUT)
    arbiter, workers = daemon_pids()
    return {'arbiter': arbiter, 'workers': workers}


def is_mid_way(when: str) -> dict | None:
    """Return what runs at the moment ``when`` of the campaign, or ``None`` before it.

    ``training``: a pw.x label is done and the first committee's training jobs are with the scheduler.
    ``labelling``: the first committee is trained and a pw.x job of the next labelling is with the scheduler.
    """
    pw, trainings = states(PW), states(MACE_TRAIN)
    finished_pw = [pk for pk, state, status, _ in pw if state == 'finished' and status == 0]
    pw_jobs = [pk for pk, state, _, job_id in pw if job_id and state in ('waiting', 'running')]
    training_jobs = [pk for pk, state, _, job_id in trainings if job_id and state in ('waiting', 'running')]
    trained = [pk for pk, state, status, _ in trainings if state == 'finished' and status == 0]
    moment = {'finished_pw': len(finished_pw), 'pw_jobs': pw_jobs, 'training_jobs': training_jobs, 'trained': trained}
    if when == 'training' and finished_pw and training_jobs:
        return moment
    if when == 'labelling' and trained and pw_jobs:
        return moment
    return None


def crash(pk: int, when: str, deadline: float) -> dict:
    """Wait for the moment ``when`` (see :func:`is_mid_way`), SIGKILL the daemon's processes, start it again."""
    moment = None
    while moment is None:
        state, status = campaign_state(pk)
        if state in ('finished', 'excepted', 'killed') or time.time() > deadline:
            return {'error': f'campaign {pk} is {state} ({status}) before the kill at {when}', 'pw': states(PW)}
        moment = is_mid_way(when)
        if moment is None:
            time.sleep(POLL)
    arbiter, workers = daemon_pids()
    sockets = get_daemon_client().get_circus_socket_directory()
    others = [child.pid for child in psutil.Process(arbiter).children() if child.pid not in workers]  # circusd-stats
    killed = [arbiter, *workers, *others]
    for pid in killed:  # the arbiter first, so that it cannot respawn the workers
        os.kill(pid, signal.SIGKILL)
    while not all(is_gone(pid) for pid in killed):
        time.sleep(0.2)
    shutil.rmtree(sockets, ignore_errors=True)  # what `verdi daemon stop` would have removed
    moment['campaign_state'] = campaign_state(pk)[0]
    active = orm.QueryBuilder().append(
        orm.ProcessNode,
        filters={'attributes.process_state': {'in': ['created', 'waiting', 'running']}},
        project=['id', 'attributes.process_label', 'attributes.process_state'],
    )
    moment['active'] = sorted(active.all())
    restarted = start()
    return {'killed': killed, 'arbiter': arbiter, 'workers': workers, 'at_kill': moment, 'restarted': restarted}


def finish(pk: int, deadline: float) -> dict:
    """Wait until the campaign terminates (or the deadline passes)."""
    state, status = campaign_state(pk)
    while state not in ('finished', 'excepted', 'killed') and time.time() < deadline:
        time.sleep(POLL * 2)
        state, status = campaign_state(pk)
    return {'state': state, 'exit_status': status}


def stop(pk: int | None) -> dict:
    """Kill the campaign if it still runs (so that no job outlives the test), then stop the daemon."""
    from aiida.engine.processes.control import kill_processes

    client = get_daemon_client()
    if not client.is_daemon_running:
        return {'stopped': False}
    if pk is not None and campaign_state(pk)[0] not in ('finished', 'excepted', 'killed'):
        kill_processes([orm.load_node(pk)], all_entries=False, timeout=DAEMON_TIMEOUT, wait=True)
    _, workers = daemon_pids()
    sockets = client.get_circus_socket_directory()
    client.stop_daemon(wait=True, timeout=DAEMON_TIMEOUT)
    shutil.rmtree(sockets, ignore_errors=True)  # aiida-core may miss it once the PID file is gone
    return {'stopped': True, 'workers': workers, 'queue_deleted': delete_launch_queue()}


def delete_launch_queue() -> bool:
    """Delete the profile's (empty) RabbitMQ launch queue, which deleting the profile leaves behind."""
    import asyncio

    import aio_pika
    from aiida.brokers.rabbitmq.utils import get_launch_queue_name
    from aiida.manage import get_manager

    broker = get_manager().get_broker()
    if broker is None or not hasattr(broker, 'get_url'):
        return False
    name = get_launch_queue_name(f'aiida-{get_manager().get_profile().uuid}')

    async def delete() -> None:
        async with await aio_pika.connect(broker.get_url()) as connection:
            channel = await connection.channel()
            await channel.queue_delete(name, if_empty=True)

    try:
        asyncio.run(delete())
    except Exception:  # best effort: a queue left behind is empty and harmless
        return False
    return True


def frames_digest(dataset) -> str:
    """Return a digest of the content of every frame of ``dataset``: geometry, labels and split."""
    digest = hashlib.sha256()
    for frame in dataset.iter_frames():
        for array in (frame.numbers, frame.positions, frame.cell, frame.pbc, frame.forces, frame.stress):
            digest.update(b'-' if array is None else array.tobytes())
        digest.update(repr((frame.energy, frame.split, frame.origin, frame.iteration)).encode())
    return digest.hexdigest()


def geometry(structure: orm.StructureData) -> str:
    """Return the cell, species and positions of ``structure``, rounded: equal strings mean the same input."""
    atoms = structure.get_ase()
    return json.dumps([atoms.cell.array.round(6).tolist(), atoms.numbers.tolist(), atoms.positions.round(6).tolist()])


def structures_made(labelling: orm.WorkflowNode) -> int:
    """Return how many structures the calcfunctions of ``labelling`` made for the DFT code (one per frame, once)."""
    return sum(
        isinstance(link.node, orm.StructureData)
        for calc in labelling.called
        if isinstance(calc, orm.CalcFunctionNode)
        for link in calc.base.links.get_outgoing(link_type=LinkType.CREATE).all()
    )


def labelling_facts(campaign: orm.WorkflowNode) -> list[dict]:
    """Return, per labelling child, the frames it got and labelled and the structures it made for pw.x."""
    facts = []
    for link in campaign.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all():
        child = link.node
        if child.process_type != LABELLING:
            continue
        facts.append(
            {
                'link': link.link_label,
                'ok': child.is_finished_ok,
                'frames': len(child.inputs.dataset),
                'labelled': len(child.outputs.labelled_dataset) if 'labelled_dataset' in child.outputs else None,
                'structures_made': structures_made(child),
                'pw_base': sum(1 for grandchild in child.called if grandchild.process_type == PW_BASE),
            }
        )
    return facts


def pw_facts(campaign: orm.WorkflowNode) -> dict:
    """Return what the pw.x runs under the campaign were: per PwBaseWorkChain its PwCalculations, and their inputs."""
    descendants = campaign.called_descendants
    bases = [node for node in descendants if node.process_type == PW_BASE]
    calcs = [node for node in descendants if node.process_type == PW]
    return {
        'base_calls': sorted(sum(1 for child in base.called if child.process_type == PW) for base in bases),
        'calcs': len(calcs),
        'calcs_ok': sum(1 for calc in calcs if calc.is_finished_ok),
        'structure_uuids': len({calc.inputs.structure.uuid for calc in calcs}),
        'geometries': len({geometry(calc.inputs.structure) for calc in calcs}),
        'energies': sorted(calc.outputs.output_parameters['energy'] for calc in calcs if calc.is_finished_ok),
        'cutoffs': sorted(
            {tuple(calc.inputs.parameters['SYSTEM'][key] for key in ('ecutwfc', 'ecutrho')) for calc in calcs}
        ),
    }


def facts(pk: int) -> dict:
    """Return what the provenance of the finished campaign says."""
    campaign = orm.load_node(pk)
    dataset = campaign.outputs.dataset if 'dataset' in campaign.outputs else None
    trainings = [node for node in campaign.called_descendants if node.process_type == MACE_TRAIN]
    return {
        'uuid': campaign.uuid,
        'ok': campaign.is_finished_ok,
        'exit_status': campaign.exit_status,
        'exit_message': campaign.exit_message,
        'summary': campaign.outputs.summary.get_dict() if 'summary' in campaign.outputs else None,
        'dataset_size': len(dataset) if dataset is not None else None,
        'dataset_energies': sorted(frame.energy for frame in dataset.iter_frames()) if dataset is not None else [],
        'dataset_checksum': dataset.checksum if dataset is not None else None,
        'dataset_digest': frames_digest(dataset) if dataset is not None else None,
        'labelling': labelling_facts(campaign),
        'pw': pw_facts(campaign),
        'mace_trainings': len(trainings),
        'num_members': len(campaign.outputs.committee) if 'committee' in campaign.outputs else 0,
    }


def readback(uuid: str) -> dict:
    """Return the imported campaign, its summary and dataset, as read in this profile."""
    campaign = orm.load_node(uuid)
    dataset = campaign.outputs.dataset
    dataset.verify()  # the content checksum, recomputed from the imported file
    return {
        'ok': campaign.is_finished_ok,
        'process_type': campaign.process_type,
        'summary': campaign.outputs.summary.get_dict(),
        'dataset_size': len(dataset),
        'dataset_checksum': dataset.checksum,
        'dataset_digest': frames_digest(dataset),
    }


def main(step: str, profile: str, argument: str | None = None, when: str = 'training') -> dict:
    """Run ``step`` on ``profile``."""
    load_profile(profile, allow_switch=True)
    deadline = time.time() + float(os.environ.get('TRAINSPOT_TEST_DEADLINE', '1800'))
    steps = {
        'start': start,
        'crash': lambda: crash(int(argument), when, deadline),
        'finish': lambda: finish(int(argument), deadline),
        'stop': lambda: stop(int(argument) if argument else None),
        'facts': lambda: facts(int(argument)),
        'readback': lambda: readback(argument),
    }
    return steps[step]()


if __name__ == '__main__':
    print(json.dumps(main(*sys.argv[1:])))
