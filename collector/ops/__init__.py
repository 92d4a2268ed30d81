"""Operating the collector: the CLI's commands, automatic pruning, the collector's own logs."""
