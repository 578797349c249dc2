"""algostack.adapters.offline."""
