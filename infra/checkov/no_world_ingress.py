"""Custom checkov check CKV_ALGO_1: no security group ingress from 0.0.0.0/0 or ::/0.

checkov's built-in checks cover SSH, RDP and a few well-known ports but not NATS (4222) or
Streamlit (8501); this one fails any world-open ingress, whatever the port.
Run with: checkov -d infra --framework terraform --external-checks-dir infra/checkov
"""

from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck

WORLD = {"0.0.0.0/0", "::/0"}


def _values(conf: dict[str, Any], key: str) -> list[Any]:
    out: list[Any] = []
    for item in conf.get(key) or []:
        if isinstance(item, list):
            out.extend(item)
        else:
            out.append(item)
    return out


def _world(values: list[Any]) -> bool:
    return any(isinstance(v, str) and v.strip() in WORLD for v in values)


class NoWorldIngress(BaseResourceCheck):
    """Fail ingress rules open to the whole internet."""

    def __init__(self) -> None:
        super().__init__(
            name="Ensure no security group allows ingress from 0.0.0.0/0 or ::/0 (any port)",
            id="CKV_ALGO_1",
            categories=(CheckCategories.NETWORKING,),
            supported_resources=(
                "aws_security_group",
                "aws_security_group_rule",
                "aws_vpc_security_group_ingress_rule",
            ),
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        """Return FAILED when any ingress of the resource allows the world."""
        if self.entity_type == "aws_security_group":
            for rule in _values(conf, "ingress"):
                if isinstance(rule, dict) and (
                    _world(_values(rule, "cidr_blocks"))
                    or _world(_values(rule, "ipv6_cidr_blocks"))
                ):
                    return CheckResult.FAILED
            return CheckResult.PASSED
        if self.entity_type == "aws_security_group_rule":
            if _values(conf, "type") != ["ingress"]:
                return CheckResult.PASSED
            world = _world(_values(conf, "cidr_blocks")) or _world(
                _values(conf, "ipv6_cidr_blocks")
            )
            return CheckResult.FAILED if world else CheckResult.PASSED
        world = _world(_values(conf, "cidr_ipv4")) or _world(_values(conf, "cidr_ipv6"))
        return CheckResult.FAILED if world else CheckResult.PASSED


check = NoWorldIngress()
