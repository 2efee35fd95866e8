"""Sphinx configuration of the aiida-trainspot documentation."""

import aiida_trainspot

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
