# Chaining: a successful async invocation of the ingest controller invokes this controller
# through a Lambda destination (payload: {requestPayload, responsePayload, ...}).

data "aws_iam_policy_document" "ingest_may_invoke" {
  count = var.enable_eventbridge ? 1 : 0
  statement {
    actions   = ["lambda:InvokeFunction"]
    resources = [module.lambda.function_arn]
  }
}

resource "aws_iam_role_policy" "ingest_may_invoke" {
  count  = var.enable_eventbridge ? 1 : 0
  name   = "trading_server_chain_${var.environment}"
  role   = var.ingest_lambda_role_name
  policy = data.aws_iam_policy_document.ingest_may_invoke[0].json
}

resource "aws_lambda_permission" "ingest_may_invoke" {
  count         = var.enable_eventbridge ? 1 : 0
  statement_id  = "AllowIngestControllerChain"
  action        = "lambda:InvokeFunction"
  function_name = module.lambda.function_name
  principal     = var.ingest_lambda_role_arn
}

resource "aws_lambda_function_event_invoke_config" "chain" {
  count                        = var.enable_eventbridge ? 1 : 0
  function_name                = var.ingest_lambda_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 3600

  destination_config {
    on_success {
      destination = module.lambda.function_arn
    }
    on_failure {
      destination = var.ingest_dead_letter_queue_arn
    }
  }

  depends_on = [aws_iam_role_policy.ingest_may_invoke, aws_lambda_permission.ingest_may_invoke]

  lifecycle {
    precondition {
      condition     = var.ingest_lambda_name != null && var.ingest_lambda_role_name != null && var.ingest_lambda_role_arn != null && var.ingest_dead_letter_queue_arn != null
      error_message = "enable_eventbridge needs ingest_lambda_name, ingest_lambda_role_name, ingest_lambda_role_arn and ingest_dead_letter_queue_arn."
    }
  }
}
