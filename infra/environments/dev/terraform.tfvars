environment          = "dev"
aws_region           = "us-east-1"
bucket_name          = "algo-model-deploy-dev"
git_branch           = "feature/dev"
ingest_instance_type = "t2.small"
trader_instance_type = "t2.small"
enable_eventbridge   = false
enable_shutdown      = false
