"""The `aura-monitor` command line: `main` and one module per command."""
