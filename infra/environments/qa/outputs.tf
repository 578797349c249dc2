output "ingest_instance_id" {
  description = "Id of the ingest EC2 instance."
  value       = module.alpaca_websocket.instance_id
}

output "ingest_lambda_name" {
  description = "Name of the ingest controller Lambda."
  value       = module.alpaca_websocket.lambda_function_name
}

output "trading_lambda_name" {
  description = "Name of the trading controller Lambda."
  value       = module.trading_server.lambda_function_name
}

output "shutdown_lambda_name" {
  description = "Name of the shutdown Lambda (null when the shutdown module is off)."
  value       = var.enable_shutdown ? module.trading_server_shutdown[0].lambda_function_name : null
}

output "model_info_attrs" {
  description = "Models discovered under models/ (one trading instance each)."
  value       = module.trading_server.model_info_attrs
}

output "instance_info" {
  description = "Trading instances per model prefix."
  value       = module.trading_server.instance_info
}

output "ignored_keys" {
  description = "Keys under models/ that were not deployed."
  value       = module.trading_server.ignored_keys
}
