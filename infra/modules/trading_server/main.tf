data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_vpc" "default" {
  count   = var.vpc_id == null ? 1 : 0
  default = true
}

data "aws_ami" "trader" {
  count       = var.ami_id == null ? 1 : 0
  most_recent = true
  owners      = var.ami_owners

  filter {
    name   = "name"
    values = [var.ami_name_filter]
  }
}

# Model discovery, one folder level at a time with delimiter "/": models/ -> model types ->
# symbols -> the keys directly in each symbol folder. Artifacts live there
# (models/<model_type>/<symbol>/<model_id>-outer_...); a trader's outputs under
# <model prefix>/live/... are only a common prefix per model here, so however many days of
# them accumulate they never count toward max_model_keys. for_each below needs the keys to
# exist before the plan.
data "aws_s3_objects" "model_root" {
  bucket    = var.bucket_name
  prefix    = "models/"
  delimiter = "/"
  max_keys  = var.max_model_keys
}

data "aws_s3_objects" "model_types" {
  for_each  = toset(data.aws_s3_objects.model_root.common_prefixes)
  bucket    = var.bucket_name
  prefix    = each.key
  delimiter = "/"
  max_keys  = var.max_model_keys
}

data "aws_s3_objects" "model_symbols" {
  for_each  = toset(flatten([for t in data.aws_s3_objects.model_types : t.common_prefixes]))
  bucket    = var.bucket_name
  prefix    = each.key
  delimiter = "/"
  max_keys  = var.max_model_keys
}

locals {
  lambda_name       = "TradingServerLambda_${var.environment}"
  ingest_name       = var.websocket_instance_name != null ? var.websocket_instance_name : "alpaca-websocket-ingest-${var.environment}"
  account_id        = data.aws_caller_identity.current.account_id
  partition         = data.aws_partition.current.partition
  vpc_id            = var.vpc_id != null ? var.vpc_id : data.aws_vpc.default[0].id
  ami_id            = var.ami_id != null ? var.ami_id : data.aws_ami.trader[0].id
  nats_secret_name  = "algostack/${var.environment}/nats/trader"
  secret_arn_prefix = "arn:${local.partition}:secretsmanager:${var.aws_region}:${local.account_id}:secret"

  # The key grammar of DESIGN.md 3.1; must equal algostack.core.naming.MODEL_KEY_PATTERN
  # (a test holds the two parsers equal on the same key list).
  model_key_pattern = "^models/([^/]+)/([^/]+)/([^/]+?)-outer_([0-9]+)_inner_([0-9]+)([^/]*)$"

  # Keys at the three levels (objects straight under models/ or a type folder are reported).
  all_keys = concat(
    data.aws_s3_objects.model_root.keys,
    flatten([for t in data.aws_s3_objects.model_types : t.keys]),
    flatten([for sym in data.aws_s3_objects.model_symbols : sym.keys]),
  )
  artifacts      = [for k in local.all_keys : regex(local.model_key_pattern, k) if can(regex(local.model_key_pattern, k))]
  numbered       = [for a in local.artifacts : a if can(regex("[0-9]+$", a[2]))]
  unmatched_keys = [for k in local.all_keys : k if !can(regex(local.model_key_pattern, k))]
  unnumbered_keys = [
    for k in local.all_keys : k
    if can(regex(local.model_key_pattern, k)) && !can(regex("[0-9]+$", try(regex(local.model_key_pattern, k)[2], "")))
  ]
  ignored_keys = concat(local.unmatched_keys, local.unnumbered_keys)

  # One entry per model prefix (all folds of one nested cross-validation share it).
  model_info_attrs = {
    for prefix, group in {
      for a in local.numbered : "models/${a[0]}/${a[1]}/${a[2]}" => {
        model_type   = a[0]
        symbol       = a[1]
        model_id     = a[2]
        model_number = tonumber(regex("([0-9]+)$", a[2])[0])
      }...
    } : prefix => merge(group[0], { folds = length(group) })
  }

  symbols = sort(distinct([for m in values(local.model_info_attrs) : m.symbol]))

  # Each host's own role and instance profile, <component>_<resource>_<environment> with the
  # model in the middle: readable, at most 64 characters, unique (a hash of the prefix).
  trader_role_names = {
    for prefix, m in local.model_info_attrs : prefix => format(
      "trading_server_instance_%s_%s_%s",
      substr(replace("${m.symbol}_${m.model_type}_${m.model_number}", "/[^0-9A-Za-z_+=,.@-]/", "_"), 0, 24),
      substr(sha1(prefix), 0, 6),
      var.environment,
    )
  }


  common_tags = merge(var.tags, {
    Environment = var.environment
    Project     = "algostack"
  })
}

check "model_keys" {
  assert {
    condition     = length(local.ignored_keys) == 0
    error_message = "Ignored keys under models/ (not models/<model_type>/<symbol>/<model_id>-outer_<X>_inner_<Y><rest>, or model id without a trailing number): ${join(", ", local.ignored_keys)}"
  }
}

resource "aws_security_group" "trader" {
  name        = "trading-server-${var.environment}"
  description = "Trading hosts: no inbound traffic; outbound HTTPS only"
  vpc_id      = local.vpc_id
  tags        = merge(local.common_tags, { Name = "trading-server-${var.environment}" })
}

resource "aws_security_group_rule" "trader_https" {
  type              = "egress"
  security_group_id = aws_security_group.trader.id
  description       = "HTTPS to AWS APIs, Alpaca, GitHub and PyPI"
  protocol          = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_blocks       = ["0.0.0.0/0"]
}

# The ingest host's symbols: read by its bootstrap so a new symbol needs no instance change.
resource "aws_ssm_parameter" "symbols" {
  name        = "/algostack/${var.environment}/symbols"
  description = "Symbols of the ${var.environment} models (comma separated); the ingest host subscribes to these"
  type        = "SecureString"
  key_id      = var.kms_key_arn
  value       = length(local.symbols) > 0 ? join(",", local.symbols) : "SPY"
  tags        = local.common_tags
}

# Replaces the hosts only when ami_id is set or changed: a newer image found by the name filter
# is ignored (it would wipe every trader's journals and resume state on the next apply).
resource "terraform_data" "ami" {
  input = var.ami_id
}

resource "aws_instance" "trader" {
  #checkov:skip=CKV_AWS_135:EBS optimisation is not available on every allowed type (t2.small in dev); t3 types are EBS-optimised by default.
  for_each = local.model_info_attrs

  ami                         = local.ami_id
  instance_type               = var.instance_type
  subnet_id                   = var.subnet_id
  iam_instance_profile        = aws_iam_instance_profile.trader[each.key].name
  vpc_security_group_ids      = [aws_security_group.trader.id, var.nats_client_security_group_id]
  associate_public_ip_address = var.associate_public_ip_address
  monitoring                  = var.detailed_monitoring

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    encrypted             = true
    kms_key_id            = var.kms_key_arn
    volume_size           = var.root_volume_size
    volume_type           = "gp3"
    delete_on_termination = true
  }

  user_data = <<-EOT
    #!/bin/bash
    install -d -m 0755 /opt/algostack
    cat > /opt/algostack/deployment_config.txt <<'CFG'
    environment=${var.environment}
    aws_region=${var.aws_region}
    bucket=${var.bucket_name}
    git_branch=${var.git_branch}
    git_repository=${var.git_repository}
    nats_secret=${local.nats_secret_name}
    github_secret=${var.github_secret_name}
    model_prefix=${each.key}
    model_type=${each.value.model_type}
    symbol=${each.value.symbol}
    model_id=${each.value.model_id}
    model_number=${each.value.model_number}
    sync_schedule=${var.sync_schedule}
    CFG
  EOT

  tags = merge(local.common_tags, {
    Name        = "trading-server-${var.environment}-${each.value.symbol}-${each.value.model_type}-${each.value.model_number}"
    Role        = "trader"
    ModelPrefix = each.key
    ModelType   = each.value.model_type
    Symbol      = each.value.symbol
    ModelId     = each.value.model_id
    ModelNumber = tostring(each.value.model_number)
  })
  volume_tags = merge(local.common_tags, {
    Name = "trading-server-${var.environment}-${each.value.symbol}-${each.value.model_type}-${each.value.model_number}"
  })

  # Roll the AMI on purpose: set or change ami_id (replaces every trader), or
  # `terraform apply -replace='module.trading_server.aws_instance.trader["<model prefix>"]'`.
  lifecycle {
    ignore_changes       = [ami]
    replace_triggered_by = [terraform_data.ami]
  }
}
