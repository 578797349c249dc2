"""algostack.adapters.alpaca."""
