"""algostack.adapters.nats."""
