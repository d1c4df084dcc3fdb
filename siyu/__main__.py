"""`python -m siyu`: the same CLI as the `siyu` command."""

from siyu.cli import main

main()
