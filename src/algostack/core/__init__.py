"""Pure logic, no I/O. Never imports a network client (alpaca-py, nats-py, boto3)."""
