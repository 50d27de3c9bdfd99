"""`python -m attncli` runs the same app as `attn`."""

from .cli.entry import main

if __name__ == "__main__":
    main()
