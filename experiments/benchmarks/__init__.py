"""One module per ``python -m experiments.benchmark`` subcommand, each with ``add_parser``."""
