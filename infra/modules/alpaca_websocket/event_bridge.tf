data "aws_iam_policy_document" "scheduler_assume" {
  count = var.enable_eventbridge ? 1 : 0
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
  count              = var.enable_eventbridge ? 1 : 0
  name               = "alpaca_websocket_scheduler_${var.environment}"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume[0].json
  tags               = local.common_tags
}

data "aws_iam_policy_document" "scheduler" {
  count = var.enable_eventbridge ? 1 : 0
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
    resources = [local.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  count  = var.enable_eventbridge ? 1 : 0
  name   = "alpaca_websocket_scheduler_${var.environment}"
  role   = aws_iam_role.scheduler[0].id
  policy = data.aws_iam_policy_document.scheduler[0].json
}

# 08:30 New York time on weekdays; the controller itself skips NYSE holidays.
resource "aws_scheduler_schedule" "daily" {
  count                        = var.enable_eventbridge ? 1 : 0
  name                         = "alpaca-websocket-lambda-daily-9am-est-${var.environment}"
  description                  = "Start the ${var.environment} trading day"
  schedule_expression          = var.schedule_expression
  schedule_expression_timezone = var.schedule_timezone
  kms_key_arn                  = local.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = module.lambda.function_arn
    role_arn = aws_iam_role.scheduler[0].arn
    input    = jsonencode({ source = "scheduler", schedule = "daily-start" })

    retry_policy {
      maximum_retry_attempts       = 2
      maximum_event_age_in_seconds = 3600
    }

    dead_letter_config {
      arn = module.lambda.dead_letter_queue_arn
    }
  }
}
