"""Command line, configuration and launch: parse flags and YAML, start every process, serve, stop them all."""
