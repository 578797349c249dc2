#!/usr/bin/env bash
# Bootstrap an algostack host, ingest or trading: the one run.sh of both controller modules
# (infra/modules/{alpaca_websocket,trading_server}/run.sh link here; `algostack lambdas package`
# puts it at the root of each controller's zip). Sent through SSM (AWS-RunShellScript, as root).
# The role is the host's: a deployment_config.txt with model_prefix= is a trading host. The
# trading controller prepends `export NATS_PUBLIC_IP=<address>` (the ingest host's private
# address by default; the name is kept from the spec), recorded as nats_public_ip=.
# Installs what a stock Amazon Linux 2023 (dnf) or Debian (apt-get) lacks, fetches the deploy key
# (boto3, no AWS CLI), fetches algostack at git_branch, pip-installs it only when the commit
# changed, then execs `algostack node ingest|trader`: secrets, units, (re)start, and a bounded
# wait until every unit is ready (else exit 1 with its journal). Every failure exits non-zero
# with one line naming the step. Safe to run again: it converges.
# SSM may run this file with sh (the controller's prepended export hides the shebang).
if [ -z "${BASH_VERSION:-}" ]; then
  [ -r "$0" ] && exec bash "$0" "$@"
  echo "run.sh: needs bash" >&2; exit 2
fi
set -euo pipefail
umask 022

APP_DIR="${ALGOSTACK_APP_DIR:-/opt/algostack}"
CONFIG="${ALGOSTACK_DEPLOYMENT_CONFIG:-$APP_DIR/deployment_config.txt}"
SRC_DIR="$APP_DIR/src"
VENV="$APP_DIR/venv"
SSH_DIR="$APP_DIR/.ssh"
BOTO3_VERSION="1.44.5" # as pinned in pyproject.toml
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 GIT_TERMINAL_PROMPT=0
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT

fail() { echo "run.sh: $*" >&2; exit 1; }
# step WHAT CMD...: run quietly; on failure one line naming the step, then its last output lines.
step() {
  local what="$1"; shift
  "$@" >"$LOG" 2>&1 || { echo "run.sh: $what failed" >&2; tail -n 5 "$LOG" >&2; exit 1; }
}
config_value() { sed -n "s/^$1=//p" "$CONFIG" | tail -n 1; } # last line wins, like Python
pick_python() {
  python=""
  for p in python3.11 python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      python="$p"; return
    fi
  done
}

[[ -r "$CONFIG" ]] || { echo "run.sh: missing $CONFIG (written by EC2 user data)" >&2; exit 2; }
role=ingest
if grep -q '^model_prefix=' "$CONFIG"; then
  role=trader
  [[ -n "${NATS_PUBLIC_IP:-}" ]] || { echo "run.sh: NATS_PUBLIC_IP is not set (the trading controller exports it)" >&2; exit 2; }
  [[ "$NATS_PUBLIC_IP" =~ ^[0-9A-Fa-f.:]+$ ]] || { echo "run.sh: NATS_PUBLIC_IP=$NATS_PUBLIC_IP is not an IP address" >&2; exit 2; }
  sed -i '/^nats_public_ip=/d' "$CONFIG" # replace, never a second line (DESIGN.md 3.2)
  echo "nats_public_ip=$NATS_PUBLIC_IP" >>"$CONFIG"
fi
chmod 0644 "$CONFIG"
region="$(config_value aws_region)"
branch="$(config_value git_branch)"
repository="$(config_value git_repository)"
github_secret="$(config_value github_secret)"
[[ -n "$branch" && -n "$repository" ]] || { echo "run.sh: $CONFIG needs git_branch= and git_repository=" >&2; exit 2; }

# 1. prerequisites: python >= 3.11 with venv, git, an ssh client.
pick_python
if [[ -z "$python" ]] || ! command -v git >/dev/null || ! command -v ssh >/dev/null; then
  if command -v dnf >/dev/null; then
    step "installing prerequisites (dnf)" dnf install -y -q python3.11 python3.11-pip git openssh-clients
  elif command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    step "apt-get update" apt-get update -q
    step "installing prerequisites (apt-get)" apt-get install -y -q --no-install-recommends python3 python3-venv git openssh-client
  else
    fail "prerequisites: no dnf or apt-get; install python3.11 (or python3 >= 3.11 with venv), git and ssh"
  fi
  pick_python
  [[ -n "$python" ]] || fail "prerequisites: no python3.11, and python3 is older than 3.11 or lacks venv"
fi

# 2. virtualenv with boto3 (readable by the service user).
install -d -m 0755 "$APP_DIR"
if ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  rm -rf "$VENV"
  step "creating the virtualenv $VENV" "$python" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import boto3, sys; sys.exit(boto3.__version__ != '$BOTO3_VERSION')" 2>/dev/null; then
  step "pip install boto3==$BOTO3_VERSION" "$VENV/bin/pip" install --quiet "boto3==$BOTO3_VERSION"
fi

# 3. deploy key from Secrets Manager (root 0600, never echoed).
install -d -m 0700 "$SSH_DIR"
SECRET_ID="${github_secret:-github/ssh-key}" REGION="$region" KEY_FILE="$SSH_DIR/deploy_key" "$VENV/bin/python" - <<'PY'
import json, os, sys
import boto3
from botocore.exceptions import BotoCoreError, ClientError
name = os.environ["SECRET_ID"]
try:
    sm = boto3.client("secretsmanager", region_name=os.environ["REGION"] or None)
    key = sm.get_secret_value(SecretId=name).get("SecretString") or ""
except ClientError as exc:
    code = exc.response.get("Error", {}).get("Code", "")
    why = "does not exist" if code == "ResourceNotFoundException" else f"cannot be read ({code})"
    sys.exit(f"run.sh: deploy key: secret {name!r} (github_secret=) {why}")
except BotoCoreError as exc:
    sys.exit(f"run.sh: deploy key: cannot reach Secrets Manager for {name!r}: {exc}")
if key.lstrip().startswith("{"):
    key = json.loads(key).get("private_key", "")
if "PRIVATE KEY" not in key:
    sys.exit(f"run.sh: deploy key: secret {name!r} (github_secret=) holds no private key")
path = os.environ["KEY_FILE"]
os.umask(0o077)
with open(path + ".tmp", "w") as fh:
    fh.write(key.strip() + "\n")
os.chmod(path + ".tmp", 0o600)
os.replace(path + ".tmp", path)
PY

# 4. the code at git_branch, over the port in the URL (ssh://git@ssh.github.com:443/org/repo.git).
export GIT_SSH_COMMAND="ssh -i $SSH_DIR/deploy_key -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=30 -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=$SSH_DIR/known_hosts"
[[ -d "$SRC_DIR/.git" ]] || { rm -rf "$SRC_DIR"; step "git init $SRC_DIR" git init -q "$SRC_DIR"; }
git -C "$SRC_DIR" remote remove origin 2>/dev/null || true
git -C "$SRC_DIR" remote add origin "$repository"
rc=0; git -C "$SRC_DIR" ls-remote --exit-code origin "refs/heads/$branch" >"$LOG" 2>&1 || rc=$?
[[ $rc -ne 2 ]] || fail "git: branch $branch does not exist in $repository"
[[ $rc -eq 0 ]] || fail "git: $repository refused the clone (wrong deploy key in ${github_secret:-github/ssh-key}?): $(grep -m 1 . "$LOG")"
step "git fetch of $branch from $repository" git -C "$SRC_DIR" fetch -q --depth 1 origin "+refs/heads/$branch:refs/remotes/origin/$branch"
step "git checkout of $branch" git -C "$SRC_DIR" checkout -q --force --detach "refs/remotes/origin/$branch"
commit="$(git -C "$SRC_DIR" rev-parse HEAD)"

# 5. install the checkout only when its commit changed (a second bootstrap skips pip).
if [[ "$(cat "$VENV/.algostack-commit" 2>/dev/null || true)" != "$commit" ]]; then
  step "pip install of algostack at $commit" "$VENV/bin/pip" install --quiet "$SRC_DIR"
  chmod -R u+rwX,go+rX,go-w "$VENV" "$SRC_DIR"
  echo "$commit" >"$VENV/.algostack-commit"
fi

rm -f "$LOG"
exec "$VENV/bin/algostack" node "$role" --config "$CONFIG" --app-dir "$APP_DIR"
