"""The three Lambda controllers. Stdlib + boto3 only: the Lambda zip holds nothing else."""
