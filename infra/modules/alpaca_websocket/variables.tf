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
  description = "S3 bucket holding the model artifacts and receiving logs and trades."
  type        = string
}

variable "git_branch" {
  description = "Branch of the project the node bootstrap installs (passed to EC2 user data)."
  type        = string
}

variable "git_repository" {
  description = "SSH URL of the project repository the node bootstrap clones with the deploy key; through ssh.github.com:443 because the security groups allow egress on 443 only."
  type        = string
  default     = "ssh://git@ssh.github.com:443/kayvonavishan/algo-modeling-v2.git"
}

variable "broker" {
  description = "The account behind the execution gateway on the ingest host, the only process holding broker keys: alpaca (Alpaca paper trading unless alpaca_live) or sim (the simulated account). Written as broker= into deployment_config.txt and tagged Broker."
  type        = string
  default     = "alpaca"

  validation {
    condition     = contains(["alpaca", "sim"], var.broker)
    error_message = "broker must be alpaca or sim."
  }
}

variable "alpaca_live" {
  description = "The gateway trades the live Alpaca account (real money): the explicit opt-in of DESIGN.md 3.5; live keys are then required. false keeps Alpaca paper trading."
  type        = bool
  default     = false

  validation {
    condition     = !var.alpaca_live || var.broker == "alpaca"
    error_message = "alpaca_live = true needs broker = \"alpaca\"."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the ingest host."
  type        = string
  default     = "t3.small"
}

variable "ami_name_filter" {
  description = "AMI name pattern for the ingest instance lookup (the most recent match when a host is created; later images are ignored, see ami_id)."
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
  description = "Size in GiB of the encrypted root volume."
  type        = number
  default     = 30
}

variable "vpc_id" {
  description = "VPC of the security groups; the default VPC when null."
  type        = string
  default     = null
}

variable "subnet_id" {
  description = "Subnet of the ingest instance; AWS picks a default-VPC subnet when null."
  type        = string
  default     = null
}

variable "associate_public_ip_address" {
  description = "Public address for the host; null keeps the subnet default (public in a default VPC, which has no NAT). Use private subnets with NAT or VPC endpoints to keep hosts off the internet."
  type        = bool
  default     = null
}

variable "dashboard_ingress_cidrs" {
  description = "CIDRs allowed to reach the Streamlit dashboard (8501). Set: the dashboard listens on 0.0.0.0 with the password in algostack/<environment>/dashboard (created then). Empty: it listens on 127.0.0.1, reach it through SSM port forwarding. 0.0.0.0/0 is refused."
  type        = list(string)
  default     = []

  validation {
    condition     = !contains(var.dashboard_ingress_cidrs, "0.0.0.0/0")
    error_message = "dashboard_ingress_cidrs must not contain 0.0.0.0/0; use SSM port forwarding."
  }
}

variable "enable_eventbridge" {
  description = "Create the EventBridge Scheduler schedule that starts the trading day."
  type        = bool
  default     = false
}

variable "schedule_expression" {
  description = "Scheduler expression of the daily start (evaluated in schedule_timezone)."
  type        = string
  default     = "cron(30 8 ? * MON-FRI *)"
}

variable "schedule_timezone" {
  description = "Time zone of the daily start schedule (DST-correct)."
  type        = string
  default     = "America/New_York"
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for volumes, logs, queues, secrets and Lambda environments; the module creates one when null."
  type        = string
  default     = null
}

variable "alpaca_secret_name" {
  description = "Secrets Manager secret with the Alpaca keys (JSON APCA_API_KEY_ID, APCA_API_SECRET_KEY), read only by the ingest host (market data and the execution gateway); alpaca/<environment> when null."
  type        = string
  default     = null
}

variable "github_secret_name" {
  description = "Secrets Manager secret holding the repository deploy key."
  type        = string
  default     = "github/ssh-key"
}

variable "nats_password_version" {
  description = "Bump to generate and store new passwords for the four NATS users and the dashboard (write-only; never in state)."
  type        = number
  default     = 1
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
