"""Command-line interface: ``rkdo train | eval | demo | bench | report | profile | viz``.

Argument parsing only: :mod:`.main` assembles the families (:mod:`.train`, :mod:`.bench`,
:mod:`.viz`), :mod:`._common` runs a parsed command. Nothing outside ``rkdo.cli`` imports it.
"""
