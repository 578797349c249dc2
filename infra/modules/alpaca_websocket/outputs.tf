output "instance_id" {
  description = "Id of the ingest EC2 instance."
  value       = aws_instance.ingest.id
}

output "instance_name" {
  description = "Name tag of the ingest EC2 instance."
  value       = local.instance_name
}

output "private_ip" {
  description = "Private address of the ingest host (the NATS address traders use by default)."
  value       = aws_instance.ingest.private_ip
}

output "lambda_function_name" {
  description = "Name of the ingest controller Lambda."
  value       = module.lambda.function_name
}

output "lambda_function_arn" {
  description = "ARN of the ingest controller Lambda."
  value       = module.lambda.function_arn
}

output "lambda_role_name" {
  description = "Name of the ingest controller's execution role (the trading module lets it chain)."
  value       = module.lambda.role_name
}

output "lambda_role_arn" {
  description = "ARN of the ingest controller's execution role."
  value       = module.lambda.role_arn
}

output "dead_letter_queue_arn" {
  description = "ARN of the encrypted SQS queue receiving failed ingest invocations."
  value       = module.lambda.dead_letter_queue_arn
}

output "kms_key_arn" {
  description = "ARN of the customer managed key of the stack (created here unless passed in)."
  value       = local.kms_key_arn
}

output "nats_client_security_group_id" {
  description = "Security group that may reach NATS on the ingest host; attach it to traders."
  value       = aws_security_group.nats_clients.id
}

output "nats_secret_arns" {
  description = "ARNs of the NATS credential secrets by role (ingest, trader, dashboard)."
  value       = { for role, s in aws_secretsmanager_secret.nats : role => s.arn }
}

output "dashboard_secret_arn" {
  description = "ARN of the dashboard password secret; null unless dashboard_ingress_cidrs is set."
  value       = one(aws_secretsmanager_secret.dashboard[*].arn)
}

output "schedule_name" {
  description = "Name of the daily start schedule, null when EventBridge is disabled."
  value       = var.enable_eventbridge ? aws_scheduler_schedule.daily[0].name : null
}
