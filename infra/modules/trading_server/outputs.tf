output "model_info_attrs" {
  description = "One entry per model prefix: model_type, symbol, model_id, model_number, folds."
  value       = local.model_info_attrs
}

output "instance_info" {
  description = "Per model prefix: instance id, Name tag, private address and the host's own IAM role."
  value = {
    for prefix, inst in aws_instance.trader : prefix => {
      id         = inst.id
      name       = inst.tags["Name"]
      private_ip = inst.private_ip
      role       = aws_iam_role.trader[prefix].name
    }
  }
}

output "instance_ids" {
  description = "Ids of every trading instance."
  value       = [for inst in aws_instance.trader : inst.id]
}

output "ignored_keys" {
  description = "Keys under models/ that are not model artifacts (reported, never deployed)."
  value       = local.ignored_keys
}

output "symbols" {
  description = "Distinct symbols of the deployed models."
  value       = local.symbols
}

output "lambda_function_name" {
  description = "Name of the trading controller Lambda."
  value       = module.lambda.function_name
}

output "lambda_function_arn" {
  description = "ARN of the trading controller Lambda."
  value       = module.lambda.function_arn
}

output "dead_letter_queue_arn" {
  description = "ARN of the encrypted SQS queue receiving failed trading invocations."
  value       = module.lambda.dead_letter_queue_arn
}
