"""The stand-in AMI: a Debian 12 root file system built once with ``mmdebstrap`` and cached.

Like a stock Amazon Linux 2023 image it has systemd, python3 (3.11 on Debian 12), the CA
bundle and an ``ec2-user``, and it lacks what a bootstrap must install itself: git, an SSH
client, the venv module. A first-boot unit plays cloud-init: it runs the instance's user
data once per instance id.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from algostack.errors import FatalError

CACHE_ROOT = Path("/var/cache/algostack/aws-emulator")
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "ca-certificates", "procps")
SUITE = "bookworm"

FIRST_BOOT_SCRIPT = """#!/bin/sh
# cloud-init's part the stack relies on: run the user data once per instance.
set -u
iid="$(cat /var/lib/cloud/data/instance-id)"
done_marker="/var/lib/cloud/instances/$iid/boot-finished"
[ -e "$done_marker" ] && exit 0
mkdir -p "/var/lib/cloud/instances/$iid"
if [ -s /var/lib/cloud/instance/user-data.txt ]; then
  chmod 0700 /var/lib/cloud/instance/user-data.txt
  /var/lib/cloud/instance/user-data.txt > /var/log/cloud-init-output.log 2>&1 || {
    echo "user data failed ($?)" >> /var/log/cloud-init-output.log; exit 1; }
fi
date -u +%s > "$done_marker"
"""

FIRST_BOOT_UNIT = """[Unit]
Description=Run EC2 user data once per instance (cloud-init stand-in)
ConditionPathExists=/var/lib/cloud/data/instance-id
Before=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/lib/emulated-cloud-init
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
"""

RECIPE = "\n".join(
    [SUITE, ",".join(PACKAGES), FIRST_BOOT_SCRIPT, FIRST_BOOT_UNIT, "ec2-user", "v1"]
)


def recipe_hash() -> str:
    """A short hash of the recipe: a change of recipe builds a new image."""
    return hashlib.sha256(RECIPE.encode()).hexdigest()[:12]


def require_tools() -> None:
    """Raise a clear error when this machine cannot build or boot hosts."""
    missing = [t for t in ("mmdebstrap", "systemd-nspawn", "nsenter") if not shutil.which(t)]
    if missing:
        raise FatalError(
            f"the emulated AWS day needs {', '.join(missing)}: as root, "
            "`apt-get install -y systemd-container mmdebstrap` (make test does this)"
        )


def build_image(cache_root: Path = CACHE_ROOT) -> Path:
    """Return the root file system of the stand-in AMI, building it (~30 s) when absent."""
    require_tools()
    target = cache_root / f"image-{recipe_hash()}"
    if (target / "etc" / "os-release").exists():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="image-", dir=cache_root))
    rootfs = work / "rootfs"
    hooks_dir = work / "hooks"
    hooks_dir.mkdir()
    (hooks_dir / "first-boot").write_text(FIRST_BOOT_SCRIPT)
    (hooks_dir / "first-boot.service").write_text(FIRST_BOOT_UNIT)
    hooks = [
        f'install -m 0755 {hooks_dir}/first-boot "$1/usr/local/lib/emulated-cloud-init"',
        f"install -m 0644 {hooks_dir}/first-boot.service "
        '"$1/etc/systemd/system/emulated-cloud-init.service"',
        "ln -sf /etc/systemd/system/emulated-cloud-init.service "
        '"$1/etc/systemd/system/multi-user.target.wants/emulated-cloud-init.service"',
        'chroot "$1" useradd --create-home --shell /bin/bash ec2-user',
        # A container has no console getty to wait for, and no hardware clock.
        'chroot "$1" systemctl mask console-getty.service systemd-timesyncd.service',
    ]
    argv = ["mmdebstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", "--quiet"]
    argv += [f"--customize-hook={hook}" for hook in hooks]
    argv += [SUITE, str(rootfs)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        raise FatalError(f"mmdebstrap failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    rootfs.rename(target)
    shutil.rmtree(work, ignore_errors=True)
    return target
