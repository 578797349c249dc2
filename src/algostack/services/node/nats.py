"""The nats-server configuration of the ingest host: JetStream on disk, one NATS user per role
with least permissions (DESIGN.md 3.3), users and passwords taken from the nats unit's
root-only EnvironmentFile."""

from __future__ import annotations

import json
from collections.abc import Mapping

from algostack.adapters.nats.order_channel import GATEWAY_CONSUMER
from algostack.adapters.nats.order_channel import STREAM as ORDERS
from algostack.core.codec import STREAM_NAME as MARKET
from algostack.core.naming import kill_subject
from algostack.services.node.config import NATS_ROLES, NodeLayout
from algostack.services.node.secrets import NatsCredential

NATS_PORT = 4222
NATS_MONITOR = "127.0.0.1:8222"

Permissions = dict[str, dict[str, list[str]]]


def _orders_consumer(name: str, filter_subject: str) -> list[str]:
    """Look up, create and ack the durable push consumer ``name`` of ``ORDERS`` (nats-py asks
    ``INFO`` first, then creates it through ``DURABLE.CREATE``, or ``CREATE.<stream>.<name>.
    <filter>``, the newer form that also pins the filter; deliveries come on an ``_INBOX``)."""
    return [
        f"$JS.API.CONSUMER.INFO.{ORDERS}.{name}",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{ORDERS}.{name}",
        f"$JS.API.CONSUMER.CREATE.{ORDERS}.{name}.{filter_subject}",
        f"$JS.ACK.{ORDERS}.{name}.>",
    ]


def nats_permissions(role: str, environment: str) -> Permissions:
    """The publish/subscribe allow (and deny) lists of one NATS role (DESIGN.md 3.3).

    ingest: publish market data and manage the MARKET stream. trader: read market data
    (core and its durable consumer on MARKET), publish its own events and order intents, read
    its reports through its own consumer of ORDERS (never the gateway's); never publish
    market data or reports. gateway: read intents through consumer ``gateway``, publish
    reports, its status and the kill switch, follow MARKET's bars through an ordered
    consumer, hear heartbeats and the kill switch. dashboard: read, and publish the kill
    switch.
    """
    js_read = [
        "$JS.API.INFO",
        f"$JS.API.STREAM.INFO.{MARKET}",
        f"$JS.API.CONSUMER.*.{MARKET}",
        f"$JS.API.CONSUMER.*.{MARKET}.>",
        f"$JS.API.CONSUMER.*.*.{MARKET}.>",  # DURABLE.CREATE, MSG.NEXT
        f"$JS.ACK.{MARKET}.>",
        f"$JS.FC.{MARKET}.>",
    ]
    orders_stream = [f"$JS.API.STREAM.INFO.{ORDERS}", f"$JS.API.STREAM.CREATE.{ORDERS}"]
    kill = kill_subject(environment)
    if role == "ingest":
        return {
            "publish": {
                "allow": [
                    "market.>",
                    "$JS.API.INFO",
                    f"$JS.API.STREAM.CREATE.{MARKET}",
                    f"$JS.API.STREAM.UPDATE.{MARKET}",
                    f"$JS.API.STREAM.INFO.{MARKET}",
                    # the stream's last message: where a restarted ingest resumes
                    f"$JS.API.STREAM.MSG.GET.{MARKET}",
                ]
            },
            "subscribe": {"allow": ["_INBOX.>"]},
        }
    if role == "trader":
        gateway = GATEWAY_CONSUMER
        return {
            "publish": {
                "allow": [
                    f"algostack.{environment}.trader.>",
                    "algostack.consumer.*.owner",
                    *js_read,
                    "orders.intent.>",
                    *orders_stream,
                    *_orders_consumer("*", "orders.report.>"),
                ],
                # Every trader shares one user: the consumer wildcard must not reach the
                # gateway's consumer (deny wins over allow).
                "deny": [
                    f"$JS.API.CONSUMER.*.{ORDERS}.{gateway}",
                    f"$JS.API.CONSUMER.*.{ORDERS}.{gateway}.>",
                    f"$JS.API.CONSUMER.*.*.{ORDERS}.{gateway}",
                    f"$JS.ACK.{ORDERS}.{gateway}.>",
                ],
            },
            "subscribe": {
                "allow": [
                    "market.>",
                    "_INBOX.>",
                    kill,
                    "algostack.consumer.*.owner",
                ]
            },
        }
    if role == "gateway":
        return {
            "publish": {
                "allow": [
                    "orders.report.>",
                    # services.gateway.service.status_subject (a test holds the two equal).
                    f"algostack.{environment}.gateway.status",
                    kill,
                    *orders_stream,
                    *_orders_consumer(GATEWAY_CONSUMER, "orders.intent.>"),
                    # The bars, through an ordered consumer: ephemeral, flow controlled.
                    f"$JS.API.STREAM.INFO.{MARKET}",
                    f"$JS.API.CONSUMER.CREATE.{MARKET}",
                    f"$JS.API.CONSUMER.CREATE.{MARKET}.>",
                    f"$JS.FC.{MARKET}.>",
                ]
            },
            "subscribe": {
                "allow": [
                    "_INBOX.>",
                    f"algostack.{environment}.trader.*.heartbeat",
                    kill,
                ]
            },
        }
    if role == "dashboard":
        return {
            "publish": {"allow": [kill, *js_read]},
            "subscribe": {
                "allow": [
                    "market.>",
                    f"algostack.{environment}.trader.>",
                    f"algostack.{environment}.gateway.>",
                    "_INBOX.>",
                ]
            },
        }
    raise ValueError(f"unknown NATS role {role!r}")


def nats_env_names(role: str) -> tuple[str, str]:
    """The nats unit's environment variables holding a role's (JSON-quoted) user and password."""
    return f"NATS_{role.upper()}_USER", f"NATS_{role.upper()}_PASSWORD"


def nats_env_values(creds: Mapping[str, NatsCredential]) -> dict[str, str]:
    """The nats unit's EnvironmentFile values: each user and password as a JSON string.

    nats-server parses a ``$VAR`` taken from the environment as a config value, so a bare
    password with ``#``, spaces or quotes would be misread; a JSON string is read verbatim.
    """
    out: dict[str, str] = {}
    for role in NATS_ROLES:
        user_var, password_var = nats_env_names(role)
        out[user_var] = json.dumps(creds[role].user, ensure_ascii=False)
        out[password_var] = json.dumps(creds[role].password, ensure_ascii=False)
    return out


def render_nats_conf(layout: NodeLayout, environment: str = "dev") -> str:
    """nats-server config: JetStream on disk, one user per role with least permissions.

    Users and passwords are ``$NATS_<ROLE>_USER`` / ``$NATS_<ROLE>_PASSWORD``, resolved by
    nats-server from its unit's root-only EnvironmentFile: no secret is in this file.
    """
    users = []
    for role in NATS_ROLES:
        user_var, password_var = nats_env_names(role)
        perms = json.dumps(nats_permissions(role, environment))
        users.append(f"    {{user: ${user_var}, password: ${password_var}, permissions: {perms}}}")
    return (
        "# Written by `algostack node ingest`; edits are overwritten on the next bootstrap.\n"
        f"listen: 0.0.0.0:{NATS_PORT}\n"
        f"http: {NATS_MONITOR}\n"
        "max_payload: 1MB\n"
        "jetstream {\n"
        f'  store_dir: "{layout.nats_dir}/jetstream"\n'
        "  max_file_store: 8GB\n"
        "}\n"
        "authorization {\n"
        "  users: [\n" + ",\n".join(users) + "\n  ]\n"
        "}\n"
    )
