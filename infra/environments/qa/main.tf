# The three roots are identical but for values (variables.tf defaults and terraform.tfvars).
# Build the controller packages first: `make lambdas` (infra/build/<module>.zip).

locals {
  lambda = {
    dead_letter_queue              = var.lambda_dead_letter_queue
    reserved_concurrent_executions = var.lambda_reserved_concurrent_executions
    build_dir                      = var.lambda_build_dir
  }
}

module "alpaca_websocket" {
  source = "../../modules/alpaca_websocket"

  environment             = var.environment
  aws_region              = var.aws_region
  bucket_name             = var.bucket_name
  git_branch              = var.git_branch
  git_repository          = var.git_repository
  instance_type           = var.ingest_instance_type
  ami_name_filter         = var.ami_name_filter
  ami_id                  = var.ami_id
  detailed_monitoring     = var.detailed_monitoring
  lambda                  = local.lambda
  enable_eventbridge      = var.enable_eventbridge
  dashboard_ingress_cidrs = var.dashboard_ingress_cidrs
  ssm_output_bucket       = var.ssm_output_bucket
  broker                  = var.broker
  alpaca_live             = var.alpaca_live
}

module "trading_server" {
  source = "../../modules/trading_server"

  environment                   = var.environment
  aws_region                    = var.aws_region
  bucket_name                   = var.bucket_name
  max_model_keys                = var.max_model_keys
  git_branch                    = var.git_branch
  git_repository                = var.git_repository
  instance_type                 = var.trader_instance_type
  ami_name_filter               = var.ami_name_filter
  ami_id                        = var.ami_id
  detailed_monitoring           = var.detailed_monitoring
  lambda                        = local.lambda
  sync_schedule                 = var.sync_schedule
  websocket_instance_name       = module.alpaca_websocket.instance_name
  nats_client_security_group_id = module.alpaca_websocket.nats_client_security_group_id
  nats_address                  = var.nats_address
  kms_key_arn                   = module.alpaca_websocket.kms_key_arn
  ssm_output_bucket             = var.ssm_output_bucket

  enable_eventbridge           = var.enable_eventbridge
  ingest_lambda_name           = module.alpaca_websocket.lambda_function_name
  ingest_lambda_role_name      = module.alpaca_websocket.lambda_role_name
  ingest_lambda_role_arn       = module.alpaca_websocket.lambda_role_arn
  ingest_dead_letter_queue_arn = module.alpaca_websocket.dead_letter_queue_arn
}

module "trading_server_shutdown" {
  source = "../../modules/trading_server_shutdown"
  count  = var.enable_shutdown ? 1 : 0

  environment             = var.environment
  aws_region              = var.aws_region
  bucket_name             = var.bucket_name
  kms_key_arn             = module.alpaca_websocket.kms_key_arn
  schedule_mode           = var.shutdown_schedule_mode
  lambda                  = local.lambda
  websocket_instance_name = module.alpaca_websocket.instance_name
  ssm_output_bucket       = var.ssm_output_bucket
}
