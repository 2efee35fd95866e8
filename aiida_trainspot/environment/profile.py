"""The AiiDA profile: the embedded default (SQLite + ZeroMQ) or the production one (PostgreSQL + RabbitMQ)."""

from __future__ import annotations

import subprocess
import sys

from aiida.manage.configuration import Profile, get_config, load_profile, reset_config


def ensure_profile(name: str, production: bool = False) -> tuple[Profile, bool]:
    """Load the profile ``name``, creating it with ``verdi presto`` if needed; return it and whether it is new.

    The embedded default uses SQLite and aiida-core's built-in ZeroMQ broker (no services needed); ``production``
    uses PostgreSQL and RabbitMQ on localhost, and fails if RabbitMQ cannot be reached.
    """
    if name in get_config(create=True).profile_names:
        return load_profile(name, allow_switch=True), False
    command = [sys.executable, '-m', 'aiida', 'presto', '--profile-name', name, '--non-interactive']
    if production:
        from aiida.brokers.rabbitmq.defaults import detect_rabbitmq_config

        detect_rabbitmq_config()  # raises ConnectionError naming the address it tried
        command.append('--use-postgres')
    else:
        command.append('--use-zeromq')
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f'`verdi presto` could not create profile `{name}`:\n{completed.stdout}{completed.stderr}')
    reset_config()
    config = get_config()
    if production:
        # Debian's RabbitMQ 3.10 works once `consumer_timeout` is disabled (see the production how-to).
        config.set_option('warnings.rabbitmq_version', False, scope=name)
        config.store()
    return load_profile(name, allow_switch=True), True
