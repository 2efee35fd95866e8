"""Parsers: turn the retrieved files of a calculation into output nodes and exit codes, never raising on bad output."""
