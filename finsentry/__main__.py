"""`python -m finsentry` = the `finsentry` console script."""

from finsentry.cli import main

main()
