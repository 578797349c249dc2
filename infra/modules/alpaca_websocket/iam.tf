# --- KMS key policy: the account administers the key; CloudWatch Logs may use it for our groups.
data "aws_iam_policy_document" "kms" {
  count = var.kms_key_arn == null ? 1 : 0

  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchLogs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.aws_region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${var.aws_region}:${local.account_id}:log-group:*"]
    }
  }

  # EventBridge rules deliver failed events to the encrypted dead-letter queues.
  statement {
    sid       = "EventsDeadLetters"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# --- Ingest host role: SSM core, its secrets (Alpaca, deploy key, the NATS users, the dashboard
# password), the bucket, the symbols parameter.
data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "ingest_instance" {
  name               = "alpaca_websocket_instance_${var.environment}"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
  tags               = local.common_tags
}

resource "aws_iam_role_policy_attachment" "ingest_ssm_core" {
  role       = aws_iam_role.ingest_instance.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

data "aws_iam_policy_document" "ingest_instance" {
  statement {
    sid     = "ReadSecrets"
    actions = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = concat(
      [
        "${local.secret_arn_prefix}:${local.alpaca_secret_name}-??????",
        "${local.secret_arn_prefix}:${var.github_secret_name}-??????",
      ],
      # The NATS server needs every role's credentials; the dashboard its own password.
      [for s in aws_secretsmanager_secret.nats : s.arn],
      aws_secretsmanager_secret.dashboard[*].arn,
    )
  }

  statement {
    sid       = "ListBucket"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.bucket_name}"]
  }

  statement {
    sid       = "ReadWriteObjects"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["arn:${local.partition}:s3:::${var.bucket_name}/*"]
  }

  statement {
    sid       = "ReadSymbols"
    actions   = ["ssm:GetParameter"]
    resources = ["arn:${local.partition}:ssm:${var.aws_region}:${local.account_id}:parameter${local.symbols_parameter}"]
  }

  statement {
    sid       = "DecryptWithStackKey"
    actions   = ["kms:Decrypt"]
    resources = [local.kms_key_arn]
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

resource "aws_iam_role_policy" "ingest_instance" {
  name   = "alpaca_websocket_instance_${var.environment}"
  role   = aws_iam_role.ingest_instance.id
  policy = data.aws_iam_policy_document.ingest_instance.json
}

resource "aws_iam_instance_profile" "ingest" {
  name = "alpaca_websocket_instance_${var.environment}"
  role = aws_iam_role.ingest_instance.name
  tags = local.common_tags
}
