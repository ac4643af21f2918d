"""One module per `ferret` sub-command, discovered by `analysis.cli`.

A command module defines `NAME` (the sub-command), `HELP` (one line), `add_arguments(parser)`
and `run(args) -> int`. Adding a file here adds a command; nothing else needs editing.
"""
