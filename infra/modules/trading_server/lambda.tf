# The trading controller: what differs from the other controllers. Role, log group, DLQ and
# the package check are in ../controller_lambda; the package is `make lambdas` ->
# infra/build/trading_server.zip (or lambda.build_dir).
module "lambda" {
  source = "../controller_lambda"

  component             = "trading_server"
  function_name         = local.lambda_name
  handler               = "algostack.control.handlers.trading_handler"
  description           = "Start the ${var.environment} trading fleet and run its bootstrap through SSM"
  timeout               = 900
  instance_action       = "start"
  settings              = var.lambda
  tags                  = local.common_tags
  environment_variables = { ALGOSTACK_NATS_ADDRESS = var.nats_address }

  environment          = var.environment
  bucket_name          = var.bucket_name
  ingest_instance_name = local.ingest_name
  kms_key_arn          = var.kms_key_arn
  ssm_output_bucket    = var.ssm_output_bucket
}
