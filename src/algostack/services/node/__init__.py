"""Node bootstrap, the pure part (``commands/node.py`` is the I/O): read ``deployment_config.txt``
and the secrets (:mod:`.config`, :mod:`.secrets`), render the units and the nats-server config
(:mod:`.units`, :mod:`.nats`), write them (:mod:`.install`), judge whether they came up
(:mod:`.readiness`). Tested without systemd or AWS."""

from algostack.core.unit_state import SHOW_PROPERTIES, UnitState
from algostack.services.node.config import (
    NATS_ROLES,
    DeploymentConfig,
    GatewaySpec,
    NodeLayout,
    gateway_spec,
    parse_deployment_config,
    parse_symbols,
)
from algostack.services.node.install import install_plan
from algostack.services.node.nats import (
    NATS_MONITOR,
    NATS_PORT,
    nats_env_values,
    nats_permissions,
    render_nats_conf,
)
from algostack.services.node.readiness import (
    UnitFailure,
    judge,
    notify_ready,
    wait_ready,
)
from algostack.services.node.secrets import (
    AlpacaKeys,
    IngestSecrets,
    NatsCredential,
    TraderSecrets,
    env_file_text,
    parse_alpaca_secret,
    parse_dashboard_secret,
    parse_nats_secret,
    secret_names,
)
from algostack.services.node.units import DirSpec, NodePlan, render_ingest, render_trader

__all__ = [
    "NATS_MONITOR",
    "NATS_PORT",
    "NATS_ROLES",
    "SHOW_PROPERTIES",
    "AlpacaKeys",
    "DeploymentConfig",
    "DirSpec",
    "GatewaySpec",
    "IngestSecrets",
    "NatsCredential",
    "NodeLayout",
    "NodePlan",
    "TraderSecrets",
    "UnitFailure",
    "UnitState",
    "env_file_text",
    "gateway_spec",
    "install_plan",
    "judge",
    "nats_env_values",
    "nats_permissions",
    "notify_ready",
    "parse_alpaca_secret",
    "parse_dashboard_secret",
    "parse_deployment_config",
    "parse_nats_secret",
    "parse_symbols",
    "render_ingest",
    "render_nats_conf",
    "render_trader",
    "secret_names",
    "wait_ready",
]
