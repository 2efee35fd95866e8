"""``aiida-trainspot setup``: everything a profile needs to run a campaign on this machine, idempotently."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from aiida.common.exceptions import NotExistent

from .root import cmd_root

DEFAULT_NICENESS = 10
"""Niceness of the machine-learning codes: on a shared machine, MD and training fill what DFT leaves free."""


@cmd_root.command('setup')
@click.option('--profile', 'profile_name', default='trainspot', show_default=True, help='Profile to create or reuse.')
@click.option(
    '--production',
    is_flag=True,
    help='Create the profile on PostgreSQL + RabbitMQ (localhost) instead of SQLite + the built-in ZeroMQ broker.',
)
@click.option(
    '--omp-threads',
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help='OMP_NUM_THREADS in the prepend text of every code.',
)
@click.option(
    '--warm-start/--cold-start',
    default=True,
    show_default=True,
    help='Let the MD, evaluation and MACE training codes start from a fork server with torch and MACE imported.',
)
@click.option(
    '--niceness',
    type=click.IntRange(min=0, max=19),
    default=DEFAULT_NICENESS,
    show_default=True,
    help='Niceness of the MD, evaluation and training jobs, so that DFT on the same cores comes first (0: none).',
)
@click.option(
    '--pseudo-folder',
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder of UPF files to build the pseudopotential family from (default: Debian's).",
)
def cmd_setup(
    profile_name: str,
    production: bool,
    omp_threads: int,
    warm_start: bool,
    niceness: int,
    pseudo_folder: Path | None,
) -> None:
    """Create or reuse the profile, the localhost computer, the codes and the pseudopotential family.

    Running it again changes nothing: what exists is reused and reported as such.
    """
    from ..environment.codes import default_code_specs, ensure_code, ensure_localhost
    from ..environment.profile import ensure_profile
    from ..environment.pseudos import ensure_pseudo_family

    def report(kind: str, name: str, created: bool) -> None:
        click.echo(f'{"created" if created else "exists "}  {kind:<18} {name}')

    try:
        profile, created = ensure_profile(profile_name, production)
        report('profile', f'{profile.name} ({profile.storage_backend}, {profile.process_control_backend})', created)
        computer, created = ensure_localhost()
        report('computer', computer.label, created)
        for spec in default_code_specs(Path(sys.executable).parent):
            code, created = ensure_code(spec, computer, omp_threads, warm_start, niceness)
            report('code', f'{code.full_label} -> {code.filepath_executable}', created)
        family, created = ensure_pseudo_family(pseudo_folder)
        report('pseudo family', f'{family.label} ({len(family.nodes)} elements)', created)
    except (ConnectionError, RuntimeError, OSError, NotExistent) as exception:
        raise click.ClickException(str(exception)) from exception
    click.echo(f'ready: profile `{profile.name}`, OMP_NUM_THREADS={omp_threads}, {os.cpu_count()} cores here')
