"""Warm starts: the runners' console scripts served by a fork server that has torch and MACE imported already.

Importing torch, e3nn and MACE costs a job 5–8 s of CPU before its first step, more than a short MD segment or a
training chunk of a few epochs takes on a small system, and the parallel loop runs many such jobs. With
``TRAINSPOT_WARM_START=1`` in a job's environment (``aiida-trainspot setup`` writes it in the prepend text of the
local ``trainspot-md``, ``trainspot-evaluate`` and ``trainspot-mace-train`` codes), the console script sends its
command line, working folder, environment and standard streams to a fork server on the same machine. The server
forks a child that has the libraries imported; the child runs the same ``main`` a cold start runs, in the job's
folder, with the job's environment, ``OMP_NUM_THREADS`` and niceness (or the server's, if higher: only a privileged
process may lower it), and the script exits with the child's status, passing on the signals it gets. A job reads
and writes the same files either way.

The first job finds no server: it starts one in the background (a session of its own, no terminal) and runs cold.
A server serves the user who started it only (its socket lies in a folder only that user can enter), stops after
``TRAINSPOT_WARM_IDLE`` seconds without a request (default 600), and stops without serving when a module file it
imported has changed since, so it never runs stale code: the job then runs cold. Only the standard library is
imported here, so the scripts start in a few tens of milliseconds.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

TARGETS = {
    'trainspot-md': 'aiida_trainspot.runners.md:main',
    'trainspot-evaluate': 'aiida_trainspot.runners.evaluate:main',
    'trainspot-mace-train': 'mace.cli.run_train:main',
}
"""The console scripts that start warm, and the ``module:function`` each runs."""
PRELOAD = ('torch', 'mace.calculators', 'metatomic.torch', 'sphericart.torch')
"""Libraries the server imports besides the targets' modules (the runners import these only when loading a model)."""
ENABLE_VARIABLE = 'TRAINSPOT_WARM_START'
IDLE_VARIABLE = 'TRAINSPOT_WARM_IDLE'
FOLDER_VARIABLE = 'TRAINSPOT_WARM_DIR'
IMPORTS_SET: dict[str, str] = {}
"""The environment variables the server's imports set (MACE sets one), which a cold job's imports would set too."""
EXIT_NO_STATUS = 70
"""Exit status when the warm child ended without reporting one (killed by a signal)."""
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def socket_path() -> Path:
    """Return the server socket of this Python environment, in a folder only this user may enter."""
    folder = Path(os.environ.get(FOLDER_VARIABLE) or Path(tempfile.gettempdir()) / f'trainspot-warm-{os.getuid()}')
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = folder.stat()
    if status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise PermissionError(f'{folder} must belong to this user and be closed to others (mode 700)')
    key = hashlib.sha256(sys.prefix.encode()).hexdigest()[:12]
    return folder / f'{key}.sock'


def run_cold(script: str, argv: list[str]) -> int:
    """Run the target of ``script`` in this process with ``argv`` as its command line; return its exit status."""
    sys.argv = [script, *argv]
    module, function = TARGETS[script].split(':')
    try:
        result = getattr(importlib.import_module(module), function)()
    except SystemExit as exit_request:
        result = exit_request.code
    if isinstance(result, str):
        print(result, file=sys.stderr)
        return 1
    return int(result or 0)


def launch(script: str) -> int:
    """Run ``script`` warm when enabled and a server answers, cold otherwise; return its exit status."""
    argv = sys.argv[1:]
    if os.environ.get(ENABLE_VARIABLE, '').lower() not in ('1', 'true', 'yes'):
        return run_cold(script, argv)
    try:
        path = socket_path()
    except OSError as exception:
        print(f'warm start off: {exception}', file=sys.stderr)
        return run_cold(script, argv)
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(path))
    except OSError:
        connection.close()
        with contextlib.suppress(OSError):
            start_server(path)
        return run_cold(script, argv)
    with connection:
        status = run_warm(connection, script, argv)
    return run_cold(script, argv) if status is None else status


def run_warm(connection: socket.socket, script: str, argv: list[str]) -> int | None:
    """Send the job to the server on ``connection``; return the child's status, or ``None`` if the server declined."""
    niceness = os.getpriority(os.PRIO_PROCESS, 0)
    job = {'script': script, 'argv': argv, 'cwd': os.getcwd(), 'env': dict(os.environ), 'niceness': niceness}
    request = json.dumps(job).encode()
    sys.stdout.flush()
    sys.stderr.flush()
    socket.send_fds(connection, [struct.pack('!I', len(request)) + request], [0, 1, 2])
    replies = connection.makefile('r', encoding='utf-8')
    first = replies.readline().split()
    if first[:1] != ['pid']:
        return None
    child = int(first[1])
    for number in FORWARDED_SIGNALS:
        signal.signal(number, lambda received, _frame: os.kill(child, received))
    last = replies.readline().split()
    if last[:1] != ['exit']:
        print(f'the warm job {child} ended without an exit status (killed by a signal?)', file=sys.stderr)
        return EXIT_NO_STATUS
    return int(last[1])


def start_server(path: Path) -> None:
    """Start a server for ``path`` in the background, detached from this job (it exits if one runs already)."""
    environment = {key: value for key, value in os.environ.items() if key != 'OMP_NUM_THREADS'}
    subprocess.Popen(
        [sys.executable, '-m', 'aiida_trainspot.runners.warm', str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd='/',
        env=environment,
        close_fds=True,
    )


def serve(path: Path, idle_seconds: float) -> None:
    """Serve jobs on ``path`` until idle for ``idle_seconds`` or stale; return at once if a server runs already."""
    lock = open(path.with_suffix('.lock'), 'w')
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return
    log = open(path.with_suffix('.log'), 'w', buffering=1, encoding='utf-8')
    started, environment = time.monotonic(), dict(os.environ)
    for name in (*PRELOAD, *(target.split(':')[0] for target in TARGETS.values())):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    IMPORTS_SET.update({key: value for key, value in os.environ.items() if environment.get(key) != value})
    modified = module_times()
    print(f'server {os.getpid()}: {len(modified)} modules imported in {time.monotonic() - started:.1f} s', file=log)
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)
    listener.settimeout(idle_seconds)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    try:
        serve_until_done(listener, modified, (listener, lock, log), log)
    finally:
        path.unlink(missing_ok=True)
        listener.close()


def serve_until_done(listener: socket.socket, modified: dict[str, int], server_files: tuple, log) -> None:
    """Fork a child for every job until no job came for the listener's timeout or an imported file changed."""
    while True:
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            print(f'no job for {listener.gettimeout():.0f} s: stopping', file=log)
            return
        with connection:
            current = module_times()
            changed = sorted(name for name, value in modified.items() if current.get(name) != value)
            if changed:
                connection.sendall(b'stale\n')
                print(f'imported files changed ({", ".join(changed)}): stopping', file=log)
                return
            try:
                request, fds = receive_job(connection)
            except (OSError, ValueError) as exception:  # the job's script ended before sending it all
                print(f'incomplete request ({exception}): skipped', file=log)
                continue
            child = fork_job(connection, request, fds, server_files)
            print(f'{request["script"]}: child {child} in {request["cwd"]}', file=log)


def module_times() -> dict[str, int]:
    """Return the modification time of every imported module's file."""
    times = {}
    for module in list(sys.modules.values()):
        filename = getattr(module, '__file__', None)
        if filename:
            with contextlib.suppress(OSError):
                times[filename] = os.stat(filename).st_mtime_ns
    return times


def receive_job(connection: socket.socket) -> tuple[dict, list[int]]:
    """Return the job sent on ``connection`` and its standard streams; raise ``ValueError`` if it is incomplete."""
    header, fds, _, _ = socket.recv_fds(connection, 4, 3)
    payload = b''
    try:
        if len(header) != 4 or len(fds) != 3:
            raise ValueError(f'{len(header)} header bytes and {len(fds)} streams')
        (size,) = struct.unpack('!I', header)
        while len(payload) < size:
            chunk = connection.recv(size - len(payload))
            if not chunk:
                raise ValueError(f'{len(payload)} of {size} bytes')
            payload += chunk
        return json.loads(payload), fds
    except ValueError:
        for descriptor in fds:
            os.close(descriptor)
        raise


def fork_job(connection: socket.socket, request: dict, fds: list[int], server_files: tuple) -> int:
    """Run ``request`` in a forked child with ``fds`` as its streams, closing ``server_files``; return its pid."""
    child = os.fork()
    if child:
        for descriptor in fds:
            os.close(descriptor)
        return child
    for server_file in server_files:
        server_file.close()
    status = 1
    try:
        for target, descriptor in enumerate(fds):
            os.dup2(descriptor, target)
            os.close(descriptor)
        connection.sendall(f'pid {os.getpid()}\n'.encode())
        status = run_child(request)
    except BaseException:  # the child reports every failure as its exit status
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            atexit._run_exitfuncs()  # what a cold interpreter runs at exit (log handlers, open files)
            sys.stdout.flush()
            sys.stderr.flush()
            connection.sendall(f'exit {status}\n'.encode())
        os._exit(status)


def run_child(request: dict) -> int:
    """Run the job ``request`` in this forked child, as its cold start would; return its exit status."""
    for number in (signal.SIGCHLD, *FORWARDED_SIGNALS):
        signal.signal(number, signal.SIG_DFL)
    os.chdir(request['cwd'])
    with contextlib.suppress(OSError, KeyError):  # only a privileged process may lower its niceness
        os.setpriority(os.PRIO_PROCESS, 0, int(request['niceness']))
    os.environ.clear()
    os.environ.update({**request['env'], **IMPORTS_SET})
    threads = request['env'].get('OMP_NUM_THREADS', '')
    if threads.isdigit() and int(threads) > 0 and 'torch' in sys.modules:
        sys.modules['torch'].set_num_threads(int(threads))
    return run_cold(request['script'], request['argv'])


def md() -> int:
    """Console script ``trainspot-md``."""
    return launch('trainspot-md')


def evaluate() -> int:
    """Console script ``trainspot-evaluate``."""
    return launch('trainspot-evaluate')


def mace_train() -> int:
    """Console script ``trainspot-mace-train``: ``mace_run_train``, warm-started."""
    return launch('trainspot-mace-train')


if __name__ == '__main__':
    serve(Path(sys.argv[1]), float(os.environ.get(IDLE_VARIABLE, '600')))
