"""`python -m analysis`: the `ferret` command line (`analysis.cli.main`), its exit status the process's."""

from analysis.cli import main

raise SystemExit(main())
