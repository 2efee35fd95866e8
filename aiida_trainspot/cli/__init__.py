"""The ``aiida-trainspot`` command line."""

from .root import cmd_root

__all__ = ('cmd_root',)
