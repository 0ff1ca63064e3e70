"""`drctl`: the operator's command line."""
