"""The `attn` command line: its entry (entry.py: signals, --version), its flags and
fast parser (options.py), the run of one command line and its errors (runner.py), the
pipeline from a request to the output (app.py), how output is written (output.py), and
the Typer app for help, completion and mistakes (typer_app.py). Nothing here is
imported by the rest of the package."""
