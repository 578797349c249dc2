"""algostack.services."""
