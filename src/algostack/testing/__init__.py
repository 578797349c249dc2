"""algostack.testing."""
