# --- Trading host roles: one per host, so a trader reads its own model and writes only its own
# live/ prefix (DESIGN.md 3.1), and reads only the secrets it needs (deploy key, the trader
# NATS user). No Alpaca keys: orders go through the execution gateway on the ingest host.
data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "trader" {
  for_each           = local.model_info_attrs
  name               = local.trader_role_names[each.key]
  description        = "Trading host of ${each.key} (${var.environment})"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
  tags               = merge(local.common_tags, { ModelPrefix = each.key })
}

resource "aws_iam_role_policy_attachment" "trader_ssm_core" {
  for_each   = local.model_info_attrs
  role       = aws_iam_role.trader[each.key].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

data "aws_iam_policy_document" "trader" {
  for_each = local.model_info_attrs

  statement {
    sid     = "ReadSecrets"
    actions = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = [
      "${local.secret_arn_prefix}:${var.github_secret_name}-??????",
      "${local.secret_arn_prefix}:${local.nats_secret_name}-??????",
    ]
  }

  # List only under the model: its folds (<prefix>-outer_...) and its own folder.
  statement {
    sid       = "ListOwnModel"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.bucket_name}"]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [each.key, "${each.key}-outer_*", "${each.key}/*"]
    }
  }

  # The archived minute bars (read only; market data, the same for every model): a model whose
  # features run across sessions warms up from the sessions before today (docs/data.md).
  statement {
    sid       = "ListArchivedBars"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.bucket_name}"]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["market/bars/*"]
    }
  }

  statement {
    sid       = "ReadArchivedBars"
    actions   = ["s3:GetObject"]
    resources = ["arn:${local.partition}:s3:::${var.bucket_name}/market/bars/*"]
  }

  statement {
    sid     = "ReadOwnModel"
    actions = ["s3:GetObject"]
    resources = [
      "arn:${local.partition}:s3:::${var.bucket_name}/${each.key}-outer_*",
      "arn:${local.partition}:s3:::${var.bucket_name}/${each.key}/*",
    ]
  }

  statement {
    sid       = "WriteOwnLiveOutputs"
    actions   = ["s3:PutObject"]
    resources = ["arn:${local.partition}:s3:::${var.bucket_name}/${each.key}/live/*"]
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

resource "aws_iam_role_policy" "trader" {
  for_each = local.model_info_attrs
  name     = local.trader_role_names[each.key]
  role     = aws_iam_role.trader[each.key].id
  policy   = data.aws_iam_policy_document.trader[each.key].json
}

resource "aws_iam_instance_profile" "trader" {
  for_each = local.model_info_attrs
  name     = local.trader_role_names[each.key]
  role     = aws_iam_role.trader[each.key].name
  tags     = merge(local.common_tags, { ModelPrefix = each.key })
}
