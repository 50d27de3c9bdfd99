"""`python -m attncli` runs the same app as `attn`."""

from .cli import main

main()
