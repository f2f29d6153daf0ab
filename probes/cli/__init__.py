"""The `probes` command line: a typer app with one thin module per command."""
