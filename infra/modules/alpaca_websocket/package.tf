# Lambda packaging: the controller code lives once, in src/algostack/control, and is zipped
# here together with this module's run.sh; no build step precedes `terraform plan`.
# The infra tests replace this one file with locals pointing at a zip Python builds from the
# same file set (hashicorp/archive is not mirrored offline); keep everything archive-related here.
terraform {
  required_providers {
    archive = {
      source  = "hashicorp/archive"
      version = "2.7.1"
    }
  }
}

locals {
  src_root = "${path.module}/../../../src"
  lambda_core_files = [
    "algostack/__init__.py",
    "algostack/errors.py",
    "algostack/core/__init__.py",
    "algostack/core/naming.py",
    "algostack/core/sessions.py",
    "algostack/core/calendar_data.py",
    "algostack/core/backoff.py",
  ]
  lambda_control_glob = "algostack/control/*.py"
  lambda_files = merge(
    { for f in local.lambda_core_files : f => "${local.src_root}/${f}" },
    { for f in fileset(local.src_root, local.lambda_control_glob) : f => "${local.src_root}/${f}" },
    fileexists("${path.module}/run.sh") ? { "run.sh" = "${path.module}/run.sh" } : {},
  )
}

data "archive_file" "lambda" {
  type        = "zip"
  output_path = "${path.module}/.build/${local.lambda_name}.zip"

  dynamic "source" {
    for_each = local.lambda_files
    content {
      content  = file(source.value)
      filename = source.key
    }
  }
}

locals {
  lambda_zip_path = data.archive_file.lambda.output_path
  lambda_zip_hash = data.archive_file.lambda.output_base64sha256
}
