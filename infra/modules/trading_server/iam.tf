# --- Trading host role: SSM core, its secrets, the bucket (models in, logs and trades out).
data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "trader_instance" {
  name               = "trading_server_instance_${var.environment}"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
  tags               = local.common_tags
}

resource "aws_iam_role_policy_attachment" "trader_ssm_core" {
  role       = aws_iam_role.trader_instance.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

data "aws_iam_policy_document" "trader_instance" {
  statement {
    sid     = "ReadSecrets"
    actions = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = [
      "${local.secret_arn_prefix}:${local.alpaca_secret_name}-*",
      "${local.secret_arn_prefix}:${var.github_secret_name}-*",
      "${local.secret_arn_prefix}:${local.nats_secret_name}-*",
    ]
  }

  statement {
    sid       = "ListModels"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.bucket_name}"]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["models/*"]
    }
  }

  statement {
    sid       = "ReadModelsWriteOutputs"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["arn:${local.partition}:s3:::${var.bucket_name}/models/*"]
  }

  statement {
    sid       = "DecryptWithStackKey"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }

  dynamic "statement" {
    for_each = var.ssm_output_bucket == null ? [] : [var.ssm_output_bucket]
    content {
      sid       = "SsmOutput"
      actions   = ["s3:PutObject"]
      resources = ["arn:${local.partition}:s3:::${statement.value}/ssm-output/${var.environment}/*"]
    }
  }
}

resource "aws_iam_role_policy" "trader_instance" {
  name   = "trading_server_instance_${var.environment}"
  role   = aws_iam_role.trader_instance.id
  policy = data.aws_iam_policy_document.trader_instance.json
}

resource "aws_iam_instance_profile" "trader" {
  name = "trading_server_instance_${var.environment}"
  role = aws_iam_role.trader_instance.name
  tags = local.common_tags
}

# --- Controller Lambda role: exactly what the trading controller needs (DESIGN.md 3.6).
data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "lambda" {
  name               = "trading_server_lambda_${var.environment}"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = local.common_tags
}

data "aws_iam_policy_document" "lambda" {
  statement {
    sid       = "Describe"
    actions   = ["ec2:DescribeInstances", "ec2:DescribeInstanceStatus"]
    resources = ["*"]
  }

  statement {
    sid       = "StartStopOwnInstances"
    actions   = ["ec2:StartInstances", "ec2:StopInstances"]
    resources = ["arn:${local.partition}:ec2:${var.aws_region}:${local.account_id}:instance/*"]
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

  statement {
    sid       = "RunShellDocument"
    actions   = ["ssm:SendCommand"]
    resources = ["arn:${local.partition}:ssm:${var.aws_region}::document/AWS-RunShellScript"]
  }

  statement {
    sid       = "RunOnOwnInstances"
    actions   = ["ssm:SendCommand"]
    resources = ["arn:${local.partition}:ec2:${var.aws_region}:${local.account_id}:instance/*"]
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
    resources = ["arn:${local.partition}:ssm:${var.aws_region}:${local.account_id}:parameter/algostack/${var.environment}/*"]
  }

  statement {
    sid       = "GrantForEncryptedVolumes"
    actions   = ["kms:CreateGrant"]
    resources = [var.kms_key_arn]
    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
  }

  statement {
    sid       = "DecryptEnvironment"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }

  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lambda.arn}:*"]
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

  dynamic "statement" {
    for_each = var.ssm_output_bucket == null ? [] : [var.ssm_output_bucket]
    content {
      sid       = "SsmOutput"
      actions   = ["s3:PutObject"]
      resources = ["arn:${local.partition}:s3:::${statement.value}/ssm-output/${var.environment}/*"]
    }
  }
}

resource "aws_iam_role_policy" "lambda" {
  name   = "trading_server_lambda_${var.environment}"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.lambda.json
}
