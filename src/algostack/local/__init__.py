"""algostack.local."""
