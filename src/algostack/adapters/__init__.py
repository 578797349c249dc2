"""algostack.adapters."""
