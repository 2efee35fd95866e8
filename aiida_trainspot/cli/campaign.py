"""``aiida-trainspot launch | status | report | export``: run a campaign and read what it made."""

from __future__ import annotations

from pathlib import Path

import click

from .root import cmd_root

PROFILE_OPTION = click.option(
    '--profile', 'profile_name', default='trainspot', show_default=True, help='The AiiDA profile to use.'
)


def load(profile_name: str) -> None:
    """Load the profile ``profile_name`` or stop with a message saying how to make it."""
    from aiida import load_profile
    from aiida.common.exceptions import ProfileConfigurationError

    try:
        load_profile(profile_name, allow_switch=True)
    except ProfileConfigurationError as exception:
        raise click.ClickException(f'{exception}: run `aiida-trainspot setup --profile {profile_name}`') from exception


def load_campaign(pk: str):
    """Return the ``TrainsPotWorkChain`` node ``pk`` (pk or UUID), or stop with a message."""
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    try:
        node = orm.load_node(pk)
    except (NotExistent, MultipleObjectsError, ValueError) as exception:
        raise click.ClickException(f'no node {pk}: {exception}') from exception
    if node.process_type != 'aiida.workflows:trainspot.trainspot':
        raise click.ClickException(f'node {pk} is a {node.__class__.__name__} ({node.process_type}), not a campaign')
    return node


@cmd_root.command('launch')
@click.argument('campaign_file', type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option('--daemon', is_flag=True, help='Submit to the daemon and return at once (default: run here).')
@click.option(
    '--report-dir',
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help='After a run here, write the report to this folder.',
)
@PROFILE_OPTION
def cmd_launch(campaign_file: Path, daemon: bool, report_dir: Path | None, profile_name: str) -> None:
    """Launch the campaign described in CAMPAIGN_FILE (YAML; see `aiida_trainspot.campaign.file`)."""
    import yaml

    from ..campaign.file import read_campaign

    try:
        campaign = read_campaign(yaml.safe_load(campaign_file.read_text(encoding='utf8')), campaign_file.parent)
    except (ValueError, yaml.YAMLError) as exception:
        raise click.ClickException(f'{campaign_file}: {exception}') from exception
    load(profile_name)
    from aiida.engine import run_get_node, submit

    from .launch import campaign_builder_from_file

    try:
        builder = campaign_builder_from_file(campaign)
        if daemon:
            node = submit(builder)
            click.echo(f'submitted campaign {node.pk}: follow it with `aiida-trainspot status {node.pk}`')
            return
        _, node = run_get_node(builder)
    except ValueError as exception:
        raise click.ClickException(f'{campaign_file}: {exception}') from exception
    click.echo(_status_text(node))
    if report_dir is not None:
        click.echo(f'report: {_write_report(node, report_dir)}')
    if not node.is_finished_ok:
        raise SystemExit(1)


@cmd_root.command('status')
@click.argument('pk')
@PROFILE_OPTION
def cmd_status(pk: str, profile_name: str) -> None:
    """Show the iteration, dataset size, RMSE, thresholds and children of campaign PK."""
    load(profile_name)
    click.echo(_status_text(load_campaign(pk)))


def _status_text(node) -> str:
    from .status import campaign_status

    return campaign_status(node)


@cmd_root.command('report')
@click.argument('pk')
@click.option(
    '-o', '--output', 'output', type=click.Path(file_okay=False, path_type=Path), required=True, help='Folder to write.'
)
@PROFILE_OPTION
def cmd_report(pk: str, output: Path, profile_name: str) -> None:
    """Write the plots and the HTML summary of the finished campaign PK, from its provenance."""
    load(profile_name)
    click.echo(_write_report(load_campaign(pk), output))


def _write_report(node, output: Path) -> Path:
    from ..report.html import write_report
    from ..report.provenance import campaign_record

    try:
        record = campaign_record(node)
    except ValueError as exception:
        raise click.ClickException(f'campaign {node.pk}: {exception}') from exception
    return write_report(record, output)


@cmd_root.command('export')
@click.argument('pk')
@click.option('--format', 'file_format', type=click.Choice(['extxyz']), default='extxyz', show_default=True)
@click.option('-o', '--output', type=click.Path(dir_okay=False, path_type=Path), required=True, help='File to write.')
@click.option(
    '--what',
    type=click.Choice(['dataset', 'evaluated']),
    default='dataset',
    show_default=True,
    help='The labelled dataset, or the same frames with the final committee predictions.',
)
@PROFILE_OPTION
def cmd_export(pk: str, file_format: str, output: Path, what: str, profile_name: str) -> None:
    """Write the dataset of the finished campaign PK (every labelled frame, with its split tag) to a file.

    Labels go under the keys MACE reads: `REF_energy`, `REF_forces`, `REF_stress` (eV, eV/Å, eV/Å³).
    """
    load(profile_name)
    node = load_campaign(pk)
    name = 'dataset' if what == 'dataset' else 'evaluated_dataset'
    if name not in node.outputs:
        raise click.ClickException(f'campaign {node.pk} has no `{name}` output (state: {node.process_state.value})')
    dataset = node.outputs[name]
    dataset.write_extxyz(output)
    click.echo(f'wrote {len(dataset)} frames of campaign {node.pk} to {output} ({file_format})')
