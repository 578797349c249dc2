# One controller Lambda of algostack (DESIGN.md 3.6): execution role and policy, function, log
# group, dead-letter queue, and the check that its package was built. Every controller finds
# the environment's instances by tag, runs commands on them through SSM and keeps run records
# in Parameter Store; what differs (name, handler, environment, start or stop) comes in.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id    = data.aws_caller_identity.current.account_id
  partition     = data.aws_partition.current.partition
  region        = data.aws_region.current.name
  instances_arn = "arn:${local.partition}:ec2:${local.region}:${local.account_id}:instance/*"
  role_name     = "${var.component}_lambda_${var.environment}"
  build_dir     = var.settings.build_dir != null ? var.settings.build_dir : "${path.module}/../../build"
  package_path  = "${local.build_dir}/${var.component}.zip"
  # Read without failing when the file is missing, so the precondition below can speak.
  package_exists = fileexists(local.package_path)
  package_hash   = try(filebase64sha256(local.package_path), null)

  # What every controller reads (algostack.control.config.ControlConfig.from_env).
  common_variables = {
    ALGOSTACK_ENV                  = var.environment
    ALGOSTACK_BUCKET               = var.bucket_name
    ALGOSTACK_INGEST_INSTANCE_NAME = var.ingest_instance_name
    ALGOSTACK_TRADER_NAME_PATTERN  = "trading-server-${var.environment}-*"
    ALGOSTACK_STATE_PREFIX         = "/algostack/${var.environment}/runs"
  }
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = local.role_name
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "this" {
  statement {
    sid       = "Describe"
    actions   = ["ec2:DescribeInstances", "ec2:DescribeInstanceStatus"]
    resources = ["*"]
  }

  # Least privilege: the start controllers cannot stop, the shutdown controller cannot start.
  statement {
    sid       = var.instance_action == "start" ? "StartOwnInstances" : "StopOwnInstances"
    actions   = [var.instance_action == "start" ? "ec2:StartInstances" : "ec2:StopInstances"]
    resources = [local.instances_arn]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/Environment"
      values   = [var.environment]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/Project"
      values   = ["algostack"]
    }
  }

  # Starting an instance with CMK-encrypted volumes needs a grant, or it returns to stopped.
  dynamic "statement" {
    for_each = var.instance_action == "start" ? [var.kms_key_arn] : []
    content {
      sid       = "GrantForEncryptedVolumes"
      actions   = ["kms:CreateGrant"]
      resources = [statement.value]
      condition {
        test     = "Bool"
        variable = "kms:GrantIsForAWSResource"
        values   = ["true"]
      }
    }
  }

  statement {
    sid       = "RunShellDocument"
    actions   = ["ssm:SendCommand"]
    resources = ["arn:${local.partition}:ssm:${local.region}::document/AWS-RunShellScript"]
  }

  statement {
    sid       = "RunOnOwnInstances"
    actions   = ["ssm:SendCommand"]
    resources = [local.instances_arn]
    condition {
      test     = "StringEquals"
      variable = "ssm:resourceTag/Environment"
      values   = [var.environment]
    }
    condition {
      test     = "StringEquals"
      variable = "ssm:resourceTag/Project"
      values   = ["algostack"]
    }
  }

  statement {
    sid       = "ReadCommands"
    actions   = ["ssm:GetCommandInvocation", "ssm:ListCommandInvocations", "ssm:DescribeInstanceInformation"]
    resources = ["*"]
  }

  statement {
    sid       = "RunRecords"
    actions   = ["ssm:GetParameter", "ssm:PutParameter", "ssm:DeleteParameter"]
    resources = ["arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/algostack/${var.environment}/*"]
  }

  statement {
    sid       = "DecryptEnvironment"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }

  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]
  }

  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  # The controller's run report (the SSM agent on the hosts writes the command output itself).
  dynamic "statement" {
    for_each = var.ssm_output_bucket == null ? [] : ["arn:${local.partition}:s3:::${var.ssm_output_bucket}/ssm-output/${var.environment}/reports/*"]
    content {
      sid       = "RunReports"
      actions   = ["s3:PutObject"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "this" {
  name   = local.role_name
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.settings.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_sqs_queue" "dlq" {
  name                      = "${replace(var.component, "_", "-")}-lambda-dlq-${var.environment}"
  kms_master_key_id         = var.kms_key_arn
  message_retention_seconds = 1209600
  tags                      = var.tags
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:The controller only calls AWS APIs; a VPC would add NAT or endpoints and no protection.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile and a signed artefact build; the zip is built deterministically by `algostack lambdas package` from reviewed source.
  #checkov:skip=CKV_AWS_115:Reserved concurrency is a variable defaulting to none: accounts with the default quota of 10 refuse any reservation, and the run records in Parameter Store make a concurrent duplicate invocation a no-op.
  function_name                  = var.function_name
  description                    = var.description
  role                           = aws_iam_role.this.arn
  handler                        = var.handler
  runtime                        = var.settings.runtime
  timeout                        = var.timeout
  memory_size                    = var.settings.memory_size
  reserved_concurrent_executions = var.settings.reserved_concurrent_executions
  filename                       = local.package_path
  source_code_hash               = local.package_hash
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = merge(
      local.common_variables,
      var.environment_variables,
      var.ssm_output_bucket == null ? {} : { ALGOSTACK_SSM_OUTPUT_BUCKET = var.ssm_output_bucket },
    )
  }

  dynamic "dead_letter_config" {
    for_each = var.settings.dead_letter_queue ? [aws_sqs_queue.dlq.arn] : []
    content {
      target_arn = dead_letter_config.value
    }
  }

  tracing_config {
    mode = "Active"
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = local.package_exists
      error_message = "Lambda package ${local.package_path} is missing: run `make lambdas` (or `algostack lambdas package`) in the repository root before plan or apply."
    }
  }

  depends_on = [aws_cloudwatch_log_group.this, aws_iam_role_policy.this]
}
