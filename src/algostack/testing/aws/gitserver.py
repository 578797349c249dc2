"""The repository as GitHub serves it to a deploy key: sshd on loopback, ``git-shell`` only,
one authorised key, a bare repository holding the commit under test at the deployed branch."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from algostack.core.backoff import Backoff, retry_sync
from algostack.errors import FatalError, RetryableError


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _git(*args: str, cwd: Path | None = None) -> str:
    ident = ["-c", "user.name=algostack", "-c", "user.email=algostack@localhost"]
    proc = subprocess.run(
        ["git", *ident, *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise FatalError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def snapshot_commit(repo: Path, scratch: Path) -> str:
    """The commit under test: HEAD when the work tree is clean, else a commit (on no branch)
    of every file git does not ignore, so what runs on the hosts is what is on disk."""
    env = dict(os.environ, GIT_INDEX_FILE=str(scratch / "snapshot.index"))
    head = _git("rev-parse", "HEAD", cwd=repo)
    for args in (["read-tree", "HEAD"], ["add", "--all"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    tree = subprocess.run(
        ["git", "write-tree"], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    if tree == _git("rev-parse", "HEAD^{tree}", cwd=repo):
        return head
    return _git("commit-tree", tree, "-p", head, "-m", "algostack: work tree under test", cwd=repo)


def keypair(path: Path, comment: str) -> tuple[str, str]:
    """Create an ed25519 key pair at ``path``; return (private key text, public key line)."""
    if path.exists():
        path.unlink()
    Path(str(path) + ".pub").unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.read_text(), Path(str(path) + ".pub").read_text().strip()


class GitServer:
    """sshd serving ``<root>/algostack.git`` to one deploy key; ``url`` is the clone URL."""

    def __init__(self, root: Path, source: Path, branch: str) -> None:
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        if not Path(sshd).exists() or not shutil.which("git-shell"):
            raise FatalError(
                "the emulated AWS day needs sshd and git-shell: as root, "
                "`apt-get install -y openssh-server git` (make test does this)"
            )
        self.root = root
        self.branch = branch
        root.mkdir(parents=True, exist_ok=True)
        self.bare = root / "algostack.git"
        _git("init", "--quiet", "--bare", str(self.bare))
        self.commit = snapshot_commit(source, root)
        _git(
            "push",
            "--quiet",
            "--force",
            str(self.bare),
            f"{self.commit}:refs/heads/{branch}",
            cwd=source,
        )
        self.deploy_key, public = keypair(root / "deploy_key", "algostack-deploy")
        keypair(root / "host_key", "host")
        (root / "authorized_keys").write_text(
            'command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"",restrict ' + public + "\n"
        )
        self.port = _free_port()
        config = root / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {root / 'host_key'}",
                    f"AuthorizedKeysFile {root / 'authorized_keys'}",
                    f"PidFile {root / 'sshd.pid'}",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "AllowUsers root",
                    "StrictModes no",
                    "UsePAM no",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        self._log = (root / "sshd.log").open("ab")
        self.proc = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(config)], stdout=self._log, stderr=self._log
        )
        proc = self.proc

        def connect() -> None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError as exc:
                if proc.poll() is not None:
                    raise FatalError(f"sshd exited at start (see {root / 'sshd.log'})") from None
                raise RetryableError(str(exc)) from None

        every = Backoff(base=0.1, factor=1.0, cap=0.1, floor=0.1)
        try:
            retry_sync(connect, backoff=every, deadline_s=10.0)
        except RetryableError as exc:
            raise FatalError(f"sshd did not listen within 10 s: {exc}") from None

    @property
    def url(self) -> str:
        """The clone URL (an ssh:// URL with a port, as GitHub's ssh.github.com:443)."""
        return f"ssh://root@127.0.0.1:{self.port}{self.bare}"

    def set_branch(self, branch: str, commit: str | None = None) -> None:
        """Point ``branch`` at ``commit`` (default: the commit under test)."""
        _git("update-ref", f"refs/heads/{branch}", commit or self.commit, cwd=self.bare)

    def delete_branch(self, branch: str) -> None:
        """Remove ``branch`` (fault: the deployed branch does not exist)."""
        _git("update-ref", "-d", f"refs/heads/{branch}", cwd=self.bare)

    def stall(self) -> None:
        """Freeze sshd: connections are accepted by the kernel and never answered."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`stall`."""
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Stop sshd."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
