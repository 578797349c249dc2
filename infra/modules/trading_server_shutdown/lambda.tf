# The shutdown controller: final sync, then stop (it cannot start anything). Role, log group,
# DLQ and the package check are in ../controller_lambda; the package is `make lambdas` ->
# infra/build/trading_server_shutdown.zip (or lambda.build_dir).
module "lambda" {
  source = "../controller_lambda"

  component             = "trading_server_shutdown"
  function_name         = local.lambda_name
  handler               = "algostack.control.handlers.shutdown_handler"
  description           = "Final sync of every ${var.environment} trader, then stop every instance of the environment"
  timeout               = 300
  instance_action       = "stop"
  settings              = var.lambda
  tags                  = local.common_tags
  environment_variables = var.sync_command == null ? {} : { ALGOSTACK_SYNC_COMMAND = var.sync_command }

  environment          = var.environment
  bucket_name          = var.bucket_name
  ingest_instance_name = local.ingest_name
  kms_key_arn          = var.kms_key_arn
  ssm_output_bucket    = var.ssm_output_bucket
}
