#!/usr/bin/env bash
# Bootstrap the ingest host: fetch algostack at the configured branch with the deploy key,
# install it into a virtualenv, then let `algostack node ingest` write and (re)start the
# systemd units (nats-server, ingest, dashboard). Safe to run again: it converges.
# Sent by the ingest controller through SSM (AWS-RunShellScript, as root); never run
# services in the foreground here, or the SSM command would wait for them.
set -euo pipefail

APP_DIR="${ALGOSTACK_APP_DIR:-/opt/algostack}"
CONFIG="${ALGOSTACK_DEPLOYMENT_CONFIG:-$APP_DIR/deployment_config.txt}"
SRC_DIR="$APP_DIR/src"
VENV="$APP_DIR/venv"
PYTHON="${ALGOSTACK_PYTHON:-python3.11}"

config_value() {
  # Last "key=value" line wins, like the Python parser.
  sed -n "s/^$1=//p" "$CONFIG" | tail -n 1
}

[[ -r "$CONFIG" ]] || { echo "missing $CONFIG (written by EC2 user data)" >&2; exit 2; }
region="$(config_value aws_region)"
branch="$(config_value git_branch)"
repository="$(config_value git_repository)"
github_secret="$(config_value github_secret)"
alpaca_secret="$(config_value alpaca_secret)"
nats_secret="$(config_value nats_secret)"
symbols_parameter="$(config_value symbols_parameter)"
export AWS_DEFAULT_REGION="$region"

# Deploy key: written with a private umask, never echoed.
umask 077
install -d -m 0700 "$APP_DIR/.ssh"
aws secretsmanager get-secret-value --secret-id "${github_secret:-github/ssh-key}" \
  --query SecretString --output text > "$APP_DIR/.ssh/deploy_key"
export GIT_SSH_COMMAND="ssh -i $APP_DIR/.ssh/deploy_key -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new"

if [[ -d "$SRC_DIR/.git" ]]; then
  git -C "$SRC_DIR" fetch --depth 1 origin "$branch"
  git -C "$SRC_DIR" reset --hard FETCH_HEAD
else
  git clone --depth 1 --branch "$branch" "$repository" "$SRC_DIR"
fi

[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "$SRC_DIR"

# Secrets for the units (EnvironmentFile, root-only); nats-server reads the password from it.
secrets_file="$APP_DIR/secrets.env"
{
  aws secretsmanager get-secret-value --secret-id "$alpaca_secret" --query SecretString \
    --output text | jq -r '"APCA_API_KEY_ID=\(.APCA_API_KEY_ID)", "APCA_API_SECRET_KEY=\(.APCA_API_SECRET_KEY)"'
  aws secretsmanager get-secret-value --secret-id "$nats_secret" --query SecretString \
    --output text | jq -r '"ALGOSTACK_NATS_USER=\(.user)", "ALGOSTACK_NATS_PASSWORD=\(.password)"'
} > "$secrets_file.tmp"
mv "$secrets_file.tmp" "$secrets_file"
umask 022

symbols=""
if [[ -n "$symbols_parameter" ]]; then
  symbols="$(aws ssm get-parameter --name "$symbols_parameter" --with-decryption \
    --query Parameter.Value --output text 2>/dev/null || true)"
fi

args=(node ingest --config "$CONFIG")
[[ -n "$symbols" && "$symbols" != "None" ]] && args+=(--symbols "$symbols")
"$VENV/bin/algostack" "${args[@]}"
