resource "aws_cloudwatch_log_group" "lambda" {
  name              = "/aws/lambda/${local.lambda_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
  tags              = local.common_tags
}

resource "aws_sqs_queue" "dlq" {
  name                      = "alpaca-websocket-lambda-dlq-${var.environment}"
  kms_master_key_id         = local.kms_key_arn
  message_retention_seconds = 1209600
  tags                      = local.common_tags
}

resource "aws_lambda_function" "controller" {
  #checkov:skip=CKV_AWS_117:The controller only calls AWS APIs; a VPC would add NAT or endpoints and no protection.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile and a signed artefact build; the zip is built by Terraform from reviewed source.
  function_name                  = local.lambda_name
  description                    = "Start the ${var.environment} ingest host and run its bootstrap through SSM"
  role                           = aws_iam_role.lambda.arn
  handler                        = "algostack.control.handlers.ingest_handler"
  runtime                        = var.lambda_runtime
  timeout                        = 900
  memory_size                    = 256
  reserved_concurrent_executions = 1
  filename                       = local.lambda_zip_path
  source_code_hash               = local.lambda_zip_hash
  kms_key_arn                    = local.kms_key_arn

  environment {
    variables = merge(
      {
        ALGOSTACK_ENV                  = var.environment
        ALGOSTACK_BUCKET               = var.bucket_name
        ALGOSTACK_INGEST_INSTANCE_NAME = local.instance_name
        ALGOSTACK_STATE_PREFIX         = "/algostack/${var.environment}/runs"
      },
      var.ssm_output_bucket == null ? {} : { ALGOSTACK_SSM_OUTPUT_BUCKET = var.ssm_output_bucket },
    )
  }

  dynamic "dead_letter_config" {
    for_each = var.lambda_dead_letter_queue ? [aws_sqs_queue.dlq.arn] : []
    content {
      target_arn = dead_letter_config.value
    }
  }

  tracing_config {
    mode = "Active"
  }

  tags = local.common_tags

  depends_on = [aws_cloudwatch_log_group.lambda, aws_iam_role_policy.lambda]
}
