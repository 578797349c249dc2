variable "environment" {
  description = "Deployment environment (dev, qa or prod): scopes the instance, SSM and run-record permissions."
  type        = string
}

variable "function_name" {
  description = "Name of the Lambda function (and of its log group /aws/lambda/<name>)."
  type        = string
}

variable "description" {
  description = "Description of the Lambda function."
  type        = string
}

variable "component" {
  description = "Terraform module of the controller: names its role (<component>_lambda_<environment>), dead-letter queue and package (<build_dir>/<component>.zip)."
  type        = string

  validation {
    condition     = can(regex("^(alpaca_websocket|trading_server|trading_server_shutdown)$", var.component))
    error_message = "component must be alpaca_websocket, trading_server or trading_server_shutdown."
  }
}

variable "handler" {
  description = "Handler inside the package, e.g. algostack.control.handlers.ingest_handler."
  type        = string
}

variable "timeout" {
  description = "Function timeout in seconds (Lambda's maximum is 900)."
  type        = number

  validation {
    condition     = var.timeout >= 1 && var.timeout <= 900
    error_message = "timeout must be between 1 and 900 seconds."
  }
}

variable "settings" {
  description = "Settings a stack may change: runtime (python3.12 and later run on Amazon Linux 2023), reserved_concurrent_executions (null reserves none: accounts with a concurrency quota of 10 refuse any reservation, and the run records make a concurrent duplicate a no-op), dead_letter_queue (attach the queue; emulators without DeadLetterConfig turn it off), log_retention_days, build_dir (where `algostack lambdas package` wrote the zips; infra/build when null), memory_size."
  type = object({
    runtime                        = optional(string, "python3.12")
    reserved_concurrent_executions = optional(number)
    dead_letter_queue              = optional(bool, true)
    log_retention_days             = optional(number, 365)
    build_dir                      = optional(string)
    memory_size                    = optional(number, 256)
  })
  default = {}
}

variable "bucket_name" {
  description = "Model bucket of the stack (ALGOSTACK_BUCKET)."
  type        = string
}

variable "ingest_instance_name" {
  description = "Name tag of the ingest host (ALGOSTACK_INGEST_INSTANCE_NAME)."
  type        = string
}

variable "environment_variables" {
  description = "Environment variables of this controller only; the ones every controller reads (ALGOSTACK_ENV, _BUCKET, _INGEST_INSTANCE_NAME, _TRADER_NAME_PATTERN, _STATE_PREFIX, _SSM_OUTPUT_BUCKET) are set here."
  type        = map(string)
  default     = {}
}

variable "instance_action" {
  description = "What the controller may do to the environment's instances: start (with the KMS grant encrypted volumes need) or stop."
  type        = string

  validation {
    condition     = contains(["start", "stop"], var.instance_action)
    error_message = "instance_action must be start or stop."
  }
}

variable "kms_key_arn" {
  description = "Customer managed KMS key of the stack (environment variables, log group, dead-letter queue)."
  type        = string
}

variable "ssm_output_bucket" {
  description = "Bucket for SSM command output (prefix ssm-output/<environment>/); output stays in SSM when null."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
