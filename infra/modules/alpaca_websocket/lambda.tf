# The ingest controller: what differs from the other controllers. Role, log group, DLQ and the
# package check are in ../controller_lambda; the package is `make lambdas` ->
# infra/build/alpaca_websocket.zip (or lambda.build_dir).
module "lambda" {
  source = "../controller_lambda"

  component             = "alpaca_websocket"
  function_name         = local.lambda_name
  handler               = "algostack.control.handlers.ingest_handler"
  description           = "Start the ${var.environment} ingest host and run its bootstrap through SSM"
  timeout               = 900
  instance_action       = "start"
  settings              = var.lambda
  tags                  = local.common_tags
  environment_variables = {}

  environment          = var.environment
  bucket_name          = var.bucket_name
  ingest_instance_name = local.instance_name
  kms_key_arn          = local.kms_key_arn
  ssm_output_bucket    = var.ssm_output_bucket
}
