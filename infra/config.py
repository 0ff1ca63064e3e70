"""The deployment configuration: one typed YAML file (`infra/config.example.yaml` documents it).

Everything the CDK app needs that is not already declared in the code: accounts, regions,
customers (the customer registry is written from here), retention, notification addresses, the
Lambda dependency layer, the bubble-test networks. Errors name the file, the key and the value.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drcore.registry import CustomerEntry, EnvironmentEntry
from events.schemas import BUS_NAME_DEFAULT

ACCOUNT = r"^\d{12}$"
REGION = r"^[a-z]{2}(-gov)?-[a-z]+-\d$"
# CloudWatch Logs accepts only these retention periods (days), named as in aws_logs.RetentionDays.
LOG_RETENTION_DAYS: dict[int, str] = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS",
    30: "ONE_MONTH", 60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS",
    150: "FIVE_MONTHS", 180: "SIX_MONTHS", 365: "ONE_YEAR", 400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS", 1827: "FIVE_YEARS",
    2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}  # fmt: skip
PYTHON_RUNTIMES = ("python3.11", "python3.12", "python3.13", "python3.14")


def known_log_retention(days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        raise ValueError(f"must be one of {', '.join(map(str, LOG_RETENTION_DAYS))}")
    return days


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file, key and value."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvironmentConfig(EnvironmentEntry):
    """A customer environment: the registry entry plus what its dashboard shows."""

    # Drawn as a line on the wave-duration graphs of the customer's dashboard.
    rto_target_minutes: int | None = Field(default=None, ge=1)


class CustomerConfig(CustomerEntry):
    """A customer: exactly the registry entry (`drcore.registry.CustomerEntry`), whose
    environments may also carry dashboard settings."""

    environments: list[EnvironmentConfig] = Field(min_length=1)  # type: ignore[assignment]

    def registry_entry(self) -> CustomerEntry:
        """What the services read from Parameter Store (the dashboard extras stripped)."""
        data = self.model_dump(mode="json")
        data["environments"] = [
            EnvironmentEntry(name=e.name, production=e.production).model_dump(mode="json")
            for e in self.environments
        ]
        return CustomerEntry.model_validate(data)


class OrchestrationConfig(_Model):
    account: str = Field(pattern=ACCOUNT)
    # The DR region the orchestration system runs in.
    region: str = Field(pattern=REGION)
    bus_name: str = BUS_NAME_DEFAULT
    # Days the archive keeps every orchestration event (audit + replay); 0 keeps them forever.
    archive_retention_days: int = Field(default=2192, ge=0)
    # Days the Lambda log groups keep their logs.
    log_retention_days: int = 2192
    # Days AWS Backup keeps the daily backups of the tables (PITR covers the last 35 days).
    backup_retention_days: int = Field(default=35, ge=1)

    @field_validator("log_retention_days")
    @classmethod
    def _known_retention(cls, value: int) -> int:
        return known_log_retention(value)


class AccessConfig(_Model):
    """Who may start operations (`dr.cli` events) and who may approve (`dr.approval`)."""

    # IAM principals (role or account ARNs) allowed to assume the operator / approver roles.
    operator_principals: list[str] = Field(min_length=1)
    approver_principals: list[str] = Field(min_length=1)
    operator_role_name: str = "dr-operator"
    approver_role_name: str = "dr-approver"
    max_session_hours: int = Field(default=4, ge=1, le=12)

    @field_validator("operator_principals", "approver_principals")
    @classmethod
    def _arns(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:(root|role/.+|user/.+)", value):
                raise ValueError(f"{value!r} is not an IAM account, role or user ARN")
        return values


class NotificationsConfig(_Model):
    """E-mail subscriptions of the two SNS topics (other subscribers can be added later)."""

    approval_emails: list[str] = Field(default_factory=list)
    alert_emails: list[str] = Field(default_factory=list)


class LambdaConfig(_Model):
    runtime: Literal["python3.11", "python3.12", "python3.13", "python3.14"] = "python3.13"
    memory_mb: int = Field(default=512, ge=128, le=10240)
    # Reserved concurrency per function (keeps a runaway service from starving the others).
    reserved_concurrency: int = Field(default=10, ge=2)
    # Third-party dependencies: the Powertools layer brings Powertools, pydantic and the X-Ray
    # SDK (compiled for the runtime and arm64). `{region}` and `{python}` (e.g. python313) are
    # filled in. Extra layers (e.g. one your CI builds) may follow.
    powertools_layer_arn: str = (
        "arn:aws:lambda:{region}:017000801446:layer:AWSLambdaPowertoolsPythonV3-{python}-arm64:27"
    )
    extra_layer_arns: list[str] = Field(default_factory=list)
    # Pure-Python distributions the layer lacks, copied from the local environment into each
    # function's package (no download, no Docker). Compiled distributions are refused.
    bundled_distributions: list[str] = Field(
        default_factory=lambda: ["pydantic-settings", "python-dotenv"]
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def layer_arns(self, region: str) -> list[str]:
        python = self.runtime.replace(".", "")
        arns = [self.powertools_layer_arn, *self.extra_layer_arns]
        return [arn.replace("{region}", region).replace("{python}", python) for arn in arns]


class WorkloadConfig(_Model):
    """The role the services assume in each workload account (deployed by StackSets)."""

    # DRS calls that change a source server are allowed only on servers carrying this tag.
    # Set to null to drop the condition (e.g. while tagging DRS source servers is rolled out).
    source_server_tag: dict[str, str] | None = Field(default_factory=lambda: {"dr:enabled": "true"})
    # Role names DRS passes to recovery instances (iam:PassRole), under path /service-role/.
    recovery_instance_role_prefix: str = "AWSElasticDisasterRecovery"
    # Roles a pre/post-wave hook document may run as (its AutomationAssumeRole) start with this.
    hook_role_prefix: str = "dr-hook-"


class SubnetConfig(_Model):
    cidr: str
    availability_zone: str

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        ipaddress.ip_network(value)
        return value


class BubbleNetworkConfig(_Model):
    """An isolated VPC for bubble-test drills of one customer environment. It may reuse the
    production CIDR (drilled servers keep their IPs) because nothing routes out of it."""

    customer: str
    environment: str
    account: str | None = Field(default=None, pattern=ACCOUNT)  # default: the customer's
    region: str | None = Field(default=None, pattern=REGION)  # default: the customer's DR region
    cidr: str
    subnets: list[SubnetConfig] = Field(min_length=1)
    # The cloned AD domain controllers (DNS servers of the bubble) and the AD domain.
    ad_dns_ips: list[str] = Field(min_length=1, max_length=4)
    domain_name: str
    # Interface endpoints so drilled servers stay manageable without any route out.
    ssm_endpoints: bool = True
    flow_log_retention_days: int = 365

    @field_validator("flow_log_retention_days")
    @classmethod
    def _known_retention(cls, value: int) -> int:
        return known_log_retention(value)

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        ipaddress.ip_network(value)
        return value

    @field_validator("ad_dns_ips")
    @classmethod
    def _ips(cls, values: list[str]) -> list[str]:
        for value in values:
            ipaddress.ip_address(value)
        return values

    @model_validator(mode="after")
    def _subnets_inside(self) -> BubbleNetworkConfig:
        network = ipaddress.ip_network(self.cidr)
        for subnet in self.subnets:
            if not ipaddress.ip_network(subnet.cidr).subnet_of(network):  # type: ignore[arg-type]
                raise ValueError(f"subnet {subnet.cidr} is outside the VPC CIDR {self.cidr}")
        for ip in self.ad_dns_ips:
            if ipaddress.ip_address(ip) not in network:
                raise ValueError(f"AD DNS IP {ip} is outside the VPC CIDR {self.cidr}")
        return self


class InfraConfig(_Model):
    orchestration: OrchestrationConfig
    access: AccessConfig
    notifications: NotificationsConfig = NotificationsConfig()
    lambda_: LambdaConfig = Field(default=LambdaConfig(), alias="lambda")
    workload: WorkloadConfig = WorkloadConfig()
    customers: list[CustomerConfig] = Field(default_factory=list)
    bubble_networks: list[BubbleNetworkConfig] = Field(default_factory=list)
    # Tags on every resource of every stack.
    tags: dict[str, str] = Field(default_factory=lambda: {"Project": "dr-orchestrator"})

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _consistent(self) -> InfraConfig:
        names = [c.name for c in self.customers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"customers listed twice: {', '.join(duplicates)}")
        for bubble in self.bubble_networks:
            customer = self.customer(bubble.customer)
            if customer is None:
                raise ValueError(f"bubble network for unknown customer {bubble.customer!r}")
            if customer.environment(bubble.environment) is None:
                raise ValueError(
                    f"bubble network for unknown environment {bubble.environment!r} "
                    f"of customer {bubble.customer!r}"
                )
        return self

    def customer(self, name: str) -> CustomerConfig | None:
        return next((c for c in self.customers if c.name == name), None)

    @property
    def workload_accounts(self) -> list[str]:
        return sorted({c.account for c in self.customers})


def _location(error: Any) -> str:
    return ".".join(str(part) for part in error["loc"]) or "(top level)"


def load_config(path: str | Path) -> InfraConfig:
    """Read and validate a configuration file; `ConfigError` names the file, key and value."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such configuration file (copy infra/config.example.yaml)"
        ) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return InfraConfig.model_validate(raw)
    except ValidationError as error:
        lines = [
            f"{path}: {_location(e)}: {e['msg']} (got {e.get('input')!r})"
            for e in error.errors(include_url=False)
        ]
        raise ConfigError("\n".join(lines)) from None
