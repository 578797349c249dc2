"""An IMDSv2 endpoint per instance: token first (``http_tokens = required``), then the
instance id, region and the instance profile's temporary credentials, as botocore asks."""

from __future__ import annotations

import json
import secrets
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Imds:
    """One metadata server on a free loopback port (``endpoint`` is what botocore takes)."""

    def __init__(self, instance_id: str, region: str, role: str, private_ip: str) -> None:
        self.instance_id = instance_id
        self.region = region
        self.role = role
        self.private_ip = private_ip
        self.tokens: set[str] = set()
        self.requests = 0
        self.refused = 0
        imds = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                return

            def do_PUT(self) -> None:
                imds.requests += 1
                if self.path != "/latest/api/token" or not self.headers.get(
                    "X-aws-ec2-metadata-token-ttl-seconds"
                ):
                    self._send(400, "")
                    return
                token = secrets.token_urlsafe(32)
                imds.tokens.add(token)
                self._send(200, token)

            def do_GET(self) -> None:
                imds.requests += 1
                if self.headers.get("X-aws-ec2-metadata-token") not in imds.tokens:
                    imds.refused += 1
                    self._send(401, "")
                    return
                body = imds.answer(self.path)
                self._send(200 if body is not None else 404, body or "")

            def _send(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>/``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def answer(self, path: str) -> str | None:
        """The body for one metadata path, or None (404)."""
        creds = "/latest/meta-data/iam/security-credentials/"
        if path == "/latest/meta-data/instance-id":
            return self.instance_id
        if path == "/latest/meta-data/placement/region":
            return self.region
        if path == "/latest/meta-data/local-ipv4":
            return self.private_ip
        if path == "/latest/dynamic/instance-identity/document":
            return json.dumps(
                {
                    "instanceId": self.instance_id,
                    "region": self.region,
                    "privateIp": self.private_ip,
                }
            )
        if path in (creds, creds.rstrip("/")):
            return self.role
        if path == creds + self.role:
            now = datetime.now(UTC)
            return json.dumps(
                {
                    "Code": "Success",
                    "LastUpdated": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "Type": "AWS-HMAC",
                    "AccessKeyId": "ASIA" + self.instance_id[2:].upper().ljust(16, "X")[:16],
                    "SecretAccessKey": secrets.token_urlsafe(30),
                    "Token": secrets.token_urlsafe(60),
                    "Expiration": (now + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            )
        return None

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
