# Default (spec): a CloudWatch Events rule in UTC. EventBridge rules know no time zones, so
# 21:05 UTC is 17:05 EDT in summer but 16:05 EST in winter; schedule_mode = "scheduler" runs
# the same Lambda from EventBridge Scheduler in America/New_York instead.

resource "aws_cloudwatch_event_rule" "shutdown" {
  count               = var.schedule_mode == "rule" ? 1 : 0
  name                = "trading-server-shutdown-schedule-${var.environment}"
  description         = "Stop every ${var.environment} ingest and trading instance each evening"
  schedule_expression = var.schedule_expression
  tags                = local.common_tags
}

resource "aws_cloudwatch_event_target" "shutdown" {
  count     = var.schedule_mode == "rule" ? 1 : 0
  rule      = aws_cloudwatch_event_rule.shutdown[0].name
  target_id = "TradingServerShutdownLambda"
  arn       = module.lambda.function_arn

  retry_policy {
    maximum_retry_attempts       = 2
    maximum_event_age_in_seconds = 3600
  }

  dead_letter_config {
    arn = module.lambda.dead_letter_queue_arn
  }
}

data "aws_iam_policy_document" "dlq" {
  count = var.schedule_mode == "rule" ? 1 : 0
  statement {
    actions   = ["sqs:SendMessage"]
    resources = [module.lambda.dead_letter_queue_arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.shutdown[0].arn]
    }
  }
}

resource "aws_sqs_queue_policy" "dlq" {
  count     = var.schedule_mode == "rule" ? 1 : 0
  queue_url = module.lambda.dead_letter_queue_url
  policy    = data.aws_iam_policy_document.dlq[0].json
}

resource "aws_lambda_permission" "events" {
  count         = var.schedule_mode == "rule" ? 1 : 0
  statement_id  = "AllowShutdownRule"
  action        = "lambda:InvokeFunction"
  function_name = module.lambda.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.shutdown[0].arn
}

data "aws_iam_policy_document" "scheduler_assume" {
  count = var.schedule_mode == "scheduler" ? 1 : 0
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  count              = var.schedule_mode == "scheduler" ? 1 : 0
  name               = "trading_server_shutdown_scheduler_${var.environment}"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume[0].json
  tags               = local.common_tags
}

data "aws_iam_policy_document" "scheduler" {
  count = var.schedule_mode == "scheduler" ? 1 : 0
  statement {
    actions   = ["lambda:InvokeFunction"]
    resources = [module.lambda.function_arn]
  }
  statement {
    actions   = ["sqs:SendMessage"]
    resources = [module.lambda.dead_letter_queue_arn]
  }
  statement {
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  count  = var.schedule_mode == "scheduler" ? 1 : 0
  name   = "trading_server_shutdown_scheduler_${var.environment}"
  role   = aws_iam_role.scheduler[0].id
  policy = data.aws_iam_policy_document.scheduler[0].json
}

resource "aws_scheduler_schedule" "shutdown" {
  count                        = var.schedule_mode == "scheduler" ? 1 : 0
  name                         = "trading-server-shutdown-schedule-${var.environment}"
  description                  = "Stop every ${var.environment} ingest and trading instance each evening (New York time)"
  schedule_expression          = var.scheduler_expression
  schedule_expression_timezone = var.schedule_timezone
  kms_key_arn                  = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = module.lambda.function_arn
    role_arn = aws_iam_role.scheduler[0].arn
    input    = jsonencode({ source = "scheduler", schedule = "daily-shutdown" })

    retry_policy {
      maximum_retry_attempts       = 2
      maximum_event_age_in_seconds = 3600
    }

    dead_letter_config {
      arn = module.lambda.dead_letter_queue_arn
    }
  }
}
