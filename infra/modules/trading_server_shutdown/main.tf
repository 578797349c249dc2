data "aws_caller_identity" "current" {}

locals {
  lambda_name = "TradingServerShutdownLambda_${var.environment}"
  ingest_name = var.websocket_instance_name != null ? var.websocket_instance_name : "alpaca-websocket-ingest-${var.environment}"
  account_id  = data.aws_caller_identity.current.account_id

  common_tags = merge(var.tags, {
    Environment = var.environment
    Project     = "algostack"
  })
}
