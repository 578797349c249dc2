variable "environment" {
  description = "Deployment environment of this root."
  type        = string
  default     = "prod"
}

variable "aws_region" {
  description = "AWS region of the stack."
  type        = string
  default     = "us-east-1"
}

variable "bucket_name" {
  description = "Model bucket (models in, logs and trades out)."
  type        = string
  default     = "algo-model-deploy-prod"
}

variable "git_branch" {
  description = "Branch every node installs."
  type        = string
  default     = "live"
}

variable "git_repository" {
  description = "SSH URL of the project repository (ssh.github.com:443: the hosts may reach port 443 only)."
  type        = string
  default     = "ssh://git@ssh.github.com:443/kayvonavishan/algo-modeling-v2.git"
}

variable "broker" {
  description = "The account behind the execution gateway (ingest host): alpaca (paper unless alpaca_live) or sim."
  type        = string
  default     = "alpaca"
}

variable "alpaca_live" {
  description = "The gateway trades the live Alpaca account (real money); only by this explicit opt-in."
  type        = bool
  default     = false
}

variable "sync_schedule" {
  description = "systemd OnCalendar expression of the traders' journal sync to S3."
  type        = string
  default     = "*:0/15"
}

variable "max_model_keys" {
  description = "Upper bound on the entries of each model discovery listing (live outputs never count)."
  type        = number
  default     = 10000
}

variable "ingest_instance_type" {
  description = "EC2 type of the ingest host."
  type        = string
  default     = "t3.small"
}

variable "trader_instance_type" {
  description = "EC2 type of each trading host."
  type        = string
  default     = "t3.small"
}

variable "ami_name_filter" {
  description = "AMI name pattern of every instance."
  type        = string
  default     = "al2023-ami-2023.*-x86_64"
}

variable "ami_id" {
  description = "Explicit AMI id; overrides ami_name_filter when set."
  type        = string
  default     = null
}

variable "detailed_monitoring" {
  description = "CloudWatch detailed monitoring of every instance (emulators without MonitorInstances turn it off)."
  type        = bool
  default     = true
}

variable "lambda_dead_letter_queue" {
  description = "Attach the SQS dead-letter queues to the Lambdas (emulators without DeadLetterConfig turn it off)."
  type        = bool
  default     = true
}

variable "lambda_reserved_concurrent_executions" {
  description = "Reserved concurrency of each controller Lambda; null reserves none (new accounts' quota of 10 refuses any reservation)."
  type        = number
  default     = null
}

variable "lambda_build_dir" {
  description = "Directory of the controller zips built by `make lambdas`; null means infra/build."
  type        = string
  default     = null
}

variable "enable_eventbridge" {
  description = "Daily start schedule plus ingest -> trading chaining."
  type        = bool
  default     = true
}

variable "enable_shutdown" {
  description = "Deploy the evening shutdown module."
  type        = bool
  default     = true
}

variable "shutdown_schedule_mode" {
  description = "rule (UTC cron, the spec's default) or scheduler (America/New_York, DST-correct)."
  type        = string
  default     = "rule"
}

variable "nats_address" {
  description = "Ingest address passed to traders: private or public."
  type        = string
  default     = "private"
}

variable "dashboard_ingress_cidrs" {
  description = "CIDRs allowed to reach the dashboard; empty means SSM port forwarding only."
  type        = list(string)
  default     = []
}

variable "ssm_output_bucket" {
  description = "Bucket for SSM command output; null keeps it in SSM."
  type        = string
  default     = null
}

variable "aws_endpoint_url" {
  description = "Emulator endpoint for every AWS service (tests only); null for real AWS."
  type        = string
  default     = null
}
