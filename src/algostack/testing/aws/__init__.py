"""An emulated AWS account on this machine, for the AWS-day tests and bench.

moto's server answers the AWS APIs; every EC2 instance is a real systemd host (a
``systemd-nspawn`` container booted from a Debian root file system standing in for the AMI);
SSM Run Command really runs the script inside it; IMDSv2 hands out the instance's region
and credentials. See docs/operations.md ("The emulated AWS day").
"""
