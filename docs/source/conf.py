"""Sphinx configuration of the aiida-trainspot documentation."""

import os
import subprocess
import sys
import tempfile

import aiida_trainspot


def ensure_aiida_profile() -> None:
    """Give the AiiDA process directives a profile to load: a throw-away one if this machine has none."""
    from aiida.common.exceptions import MissingConfigurationError
    from aiida.manage.configuration import get_config

    try:
        if get_config(create=False).default_profile_name:
            return
    except MissingConfigurationError:
        pass
    os.environ['AIIDA_PATH'] = tempfile.mkdtemp(prefix='aiida-trainspot-docs-')
    command = [sys.executable, '-m', 'aiida', 'presto', '--profile-name', 'docs', '--no-broker', '--non-interactive']
    subprocess.run(command, check=True, capture_output=True)
    from aiida.manage import configuration
    from aiida.manage.configuration.settings import AiiDAConfigDir

    AiiDAConfigDir.set()  # re-read AIIDA_PATH
    configuration.reset_config()


ensure_aiida_profile()

project = 'aiida-trainspot'
author = 'The aiida-trainspot developers'
copyright = '2026, The aiida-trainspot developers'
version = release = aiida_trainspot.__version__

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.viewcode',
    'sphinx_click',
    'aiida.sphinxext',
]
myst_enable_extensions = ['colon_fence', 'deflist']
source_suffix = {'.md': 'markdown', '.rst': 'restructuredtext'}
html_theme = 'furo'
html_title = 'aiida-trainspot'
autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
nitpicky = False
suppress_warnings = ['myst.header']
