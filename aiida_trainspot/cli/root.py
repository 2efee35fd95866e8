"""The root command group."""

import click

from .. import __version__


@click.group('aiida-trainspot')
@click.version_option(__version__, prog_name='aiida-trainspot')
def cmd_root():
    """Machine-learning interatomic potentials by active learning, with AiiDA provenance."""


from . import campaign, setup  # noqa: E402, F401  (registers the subcommands)
