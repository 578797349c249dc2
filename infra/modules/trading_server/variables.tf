variable "environment" {
  description = "Deployment environment (dev, qa or prod); part of every name and tag."
  type        = string

  validation {
    condition     = contains(["dev", "qa", "prod"], var.environment)
    error_message = "environment must be one of dev, qa, prod."
  }
}

variable "aws_region" {
  description = "AWS region of the stack (written into deployment_config.txt for the node bootstrap)."
  type        = string
}

variable "bucket_name" {
  description = "S3 source of models (keys under models/) and sink for logs and trades."
  type        = string
}

variable "max_model_keys" {
  description = "Upper bound on the entries of each discovery listing (models/, a model type folder, a symbol folder); live outputs never count."
  type        = number
  default     = 10000
}

variable "git_branch" {
  description = "Branch of the project the node bootstrap installs; keep it equal to the ingest host's."
  type        = string
}

variable "git_repository" {
  description = "SSH URL of the project repository the node bootstrap clones with the deploy key; through ssh.github.com:443 because the security groups allow egress on 443 only."
  type        = string
  default     = "ssh://git@ssh.github.com:443/kayvonavishan/algo-modeling-v2.git"
}

variable "sync_schedule" {
  description = "systemd OnCalendar expression of each trader's journal sync to S3 (written as sync_schedule= into deployment_config.txt)."
  type        = string
  default     = "*:0/15"

  validation {
    condition     = can(regex("^[-0-9A-Za-z*/:,. ]+$", var.sync_schedule))
    error_message = "sync_schedule must be a systemd OnCalendar expression such as *:0/15."
  }
}

variable "websocket_instance_name" {
  description = "Name tag of the ingest EC2 the controller looks up; alpaca-websocket-ingest-<environment> when null."
  type        = string
  default     = null
}

variable "instance_type" {
  description = "EC2 instance type of every trading host."
  type        = string
  default     = "t3.small"
}

variable "ami_name_filter" {
  description = "AMI name pattern for the trading instance lookup (the most recent match when a host is created; later images are ignored, see ami_id)."
  type        = string
  default     = "al2023-ami-2023.*-x86_64"
}

variable "ami_owners" {
  description = "Owners searched by the AMI lookup."
  type        = list(string)
  default     = ["amazon"]
}

variable "ami_id" {
  description = "Explicit AMI id; overrides the name-filter lookup when set. A newer image found by the filter never replaces a running host; setting or changing ami_id does (the way to roll the AMI)."
  type        = string
  default     = null
}

variable "detailed_monitoring" {
  description = "CloudWatch detailed (1-minute) monitoring of the instances."
  type        = bool
  default     = true
}

variable "root_volume_size" {
  description = "Size in GiB of each encrypted root volume."
  type        = number
  default     = 30
}

variable "vpc_id" {
  description = "VPC of the trading security group; the default VPC when null."
  type        = string
  default     = null
}

variable "subnet_id" {
  description = "Subnet of the trading instances; AWS picks a default-VPC subnet when null."
  type        = string
  default     = null
}

variable "associate_public_ip_address" {
  description = "Public address for the host; null keeps the subnet default (public in a default VPC, which has no NAT). Use private subnets with NAT or VPC endpoints to keep hosts off the internet."
  type        = bool
  default     = null
}

variable "nats_client_security_group_id" {
  description = "Security group allowed to reach NATS on the ingest host (output of the alpaca_websocket module)."
  type        = string
}

variable "nats_address" {
  description = "Which ingest address the controller passes to traders: private (same VPC) or public."
  type        = string
  default     = "private"

  validation {
    condition     = contains(["private", "public"], var.nats_address)
    error_message = "nats_address must be private or public."
  }
}

variable "kms_key_arn" {
  description = "Customer managed KMS key of the stack (output of the alpaca_websocket module)."
  type        = string
}

variable "github_secret_name" {
  description = "Secrets Manager secret holding the repository deploy key."
  type        = string
  default     = "github/ssh-key"
}

variable "enable_eventbridge" {
  description = "Chain this controller after a successful ingest invocation (event-invoke config and permissions)."
  type        = bool
  default     = false
}

variable "ingest_lambda_name" {
  description = "Name of the ingest controller Lambda (required when enable_eventbridge)."
  type        = string
  default     = null
}

variable "ingest_lambda_role_name" {
  description = "Execution role of the ingest controller, granted permission to invoke this one (required when enable_eventbridge)."
  type        = string
  default     = null
}

variable "ingest_lambda_role_arn" {
  description = "ARN of the ingest controller's execution role (required when enable_eventbridge)."
  type        = string
  default     = null
}

variable "ingest_dead_letter_queue_arn" {
  description = "On-failure destination of ingest invocations (required when enable_eventbridge)."
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
