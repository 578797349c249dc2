output "lambda_function_name" {
  description = "Name of the shutdown Lambda."
  value       = module.lambda.function_name
}

output "lambda_function_arn" {
  description = "ARN of the shutdown Lambda."
  value       = module.lambda.function_arn
}

output "schedule_name" {
  description = "Name of the rule or schedule that triggers the shutdown."
  value       = var.schedule_mode == "rule" ? aws_cloudwatch_event_rule.shutdown[0].name : aws_scheduler_schedule.shutdown[0].name
}

output "dead_letter_queue_arn" {
  description = "ARN of the encrypted SQS queue receiving failed shutdown invocations."
  value       = module.lambda.dead_letter_queue_arn
}
