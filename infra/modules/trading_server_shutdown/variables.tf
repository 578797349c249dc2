variable "environment" {
  description = "Deployment environment (dev, qa or prod); part of every name and tag."
  type        = string

  validation {
    condition     = contains(["dev", "qa", "prod"], var.environment)
    error_message = "environment must be one of dev, qa, prod."
  }
}

variable "aws_region" {
  description = "AWS region of the stack (from the calling environment)."
  type        = string
}

variable "bucket_name" {
  description = "Model bucket the traders' final sync writes to (passed to the controller)."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer managed KMS key of the stack (output of the alpaca_websocket module)."
  type        = string
}

variable "schedule_mode" {
  description = "rule: CloudWatch Events rule in UTC (the spec's default); scheduler: EventBridge Scheduler in schedule_timezone, DST-correct."
  type        = string
  default     = "rule"

  validation {
    condition     = contains(["rule", "scheduler"], var.schedule_mode)
    error_message = "schedule_mode must be rule or scheduler."
  }
}

variable "schedule_expression" {
  description = "Cron of the CloudWatch Events rule, in UTC (21:05 UTC = 17:05 EDT but 16:05 EST)."
  type        = string
  default     = "cron(5 21 * * ? *)"
}

variable "scheduler_expression" {
  description = "Cron of the Scheduler schedule when schedule_mode = scheduler, evaluated in schedule_timezone."
  type        = string
  default     = "cron(5 17 * * ? *)"
}

variable "schedule_timezone" {
  description = "Time zone of the Scheduler schedule when schedule_mode = scheduler."
  type        = string
  default     = "America/New_York"
}

variable "websocket_instance_name" {
  description = "Name tag of the ingest EC2; alpaca-websocket-ingest-<environment> when null."
  type        = string
  default     = null
}

variable "sync_command" {
  description = "Command run on each trader through SSM before stopping it; the controller's default when null."
  type        = string
  default     = null
}

variable "ssm_output_bucket" {
  description = "Bucket for SSM command output (prefix ssm-output/<environment>/); output stays in SSM when null."
  type        = string
  default     = null
}

variable "lambda" {
  description = "Settings of the controller Lambda, typed and defaulted by ../controller_lambda (variable settings): runtime (python3.12), reserved_concurrent_executions (null: none reserved), dead_letter_queue (true), log_retention_days (365), build_dir (null: infra/build, where `make lambdas` writes), memory_size (256)."
  type        = any
  default     = {}
}

variable "tags" {
  description = "Extra tags merged into every resource."
  type        = map(string)
  default     = {}
}
