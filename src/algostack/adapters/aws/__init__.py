"""algostack.adapters.aws."""
