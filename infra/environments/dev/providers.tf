# aws_endpoint_url is null in every real deployment. Set it (tests do) to point every service
# at an emulator such as moto_server; only then are credential and account checks skipped.
locals {
  emulated = var.aws_endpoint_url != null
}

provider "aws" {
  region                      = var.aws_region
  skip_credentials_validation = local.emulated
  skip_requesting_account_id  = local.emulated
  skip_metadata_api_check     = local.emulated
  s3_use_path_style           = local.emulated

  dynamic "endpoints" {
    for_each = local.emulated ? [var.aws_endpoint_url] : []
    content {
      cloudwatchevents = endpoints.value
      ec2              = endpoints.value
      iam              = endpoints.value
      kms              = endpoints.value
      lambda           = endpoints.value
      logs             = endpoints.value
      s3               = endpoints.value
      scheduler        = endpoints.value
      secretsmanager   = endpoints.value
      sqs              = endpoints.value
      ssm              = endpoints.value
      sts              = endpoints.value
    }
  }

  default_tags {
    tags = {
      Project     = "algostack"
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}
