"""`python -m normnas.cli`: the `normnas` command."""

from normnas.cli import main

main()
