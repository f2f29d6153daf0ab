"""`python -m probes`: the CLI, as the `probes` script runs it; so that `torchrun -m probes ...` works."""

from probes.cli.app import entry

if __name__ == "__main__":
    entry()
