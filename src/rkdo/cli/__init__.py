"""Command-line interface: ``rkdo train | eval | demo | bench | report | profile | viz``."""

from rkdo.cli.main import main

__all__ = ["main"]
