"""The estate file: a YAML description of a customer estate that the sandbox seeds (DESIGN §9).

```yaml
regions: {us-east-1: us-east-2}          # primary -> DR
timing: {drs_launch_seconds: [2, 6]}      # emulated durations, seeded RNG
faults: {drs_launch_failure_rate: 0, throttle_rate: 0, drop_native_event_rate: 0}
# faults may also take a region down: {regions_down: [us-east-1]} (see SandboxConfig)
customers:
  - name: acme
    account: "111111111111"
    region: us-east-1
    environments:
      - name: production                  # production: true by default for production/prod
        generate: {servers: 50, waves: 4}   # shorthand, and/or explicit servers:
        servers:
          - {name: acme-prod-ad-01, wave: 1, priority: critical, ip: 10.1.10.10,
             twin: true, replication: {state: CONTINUOUS, lag_seconds: 30},
             tags: {dr:wave: "zero", Owner: ops, dr:rpo-target: null}}
        eks_clusters: [{name: acme-prod-eks, wave: 3}]
        sql_ags: [{name: acme-prod-ag, wave: 2}]
        efs: [{name: acme-prod-files, wave: 2}]
        hooks: {pre_wave: {outcomes: [Failed, Success], seconds: 1}, post_wave: {waves: [2]}}
```

- `hooks` makes pre/post-wave SSM Automation hooks for the environment: a document
  `<customer>-<environment>-pre-wave` (or `-post-wave`) in the customer's account and DR region,
  the hook configuration in Parameter Store, and how the emulated executions end (`outcomes` of
  successive runs, the last repeating; `seconds` each; `message` on failure; `waves`).

- `generate: {servers: N, waves: W}` makes N servers over W waves: wave 1 small and critical
  (AD and DNS first), then databases (high), application tiers (medium) and the web tier (low) in
  the last wave when W >= 4. Names are deterministic (`acme-prod-ad-01`, `acme-prod-app-017`),
  IPs `10.<k>.<10 + 20*e + i//200>.<10 + i%200>` inside the customer's /16 (k: the customer's
  position, 1-based; e: the environment's position), all with twins and CONTINUOUS replication,
  lag 30 s.
- Explicit `servers` are added to the generated ones, or override one by `name` (then every field
  they leave out keeps its generated value). A new explicit server needs `wave` and `ip`.
- Every concrete server gets the tags `Name`, `Customer`, `Environment`, `dr:enabled=true`,
  `dr:priority`, `dr:wave`, `dr:recovery-strategy=drs`, `dr:rto-target` (15 in wave 1, else
  240) and `dr:rpo-target` (15). Explicit `tags` override or extend them; a `null` value removes
  a tag. This is how an estate author makes a bad tag on purpose.
- All of a customer's server IPs lie in one /16 (the /16 of its first server). The DR copy of an
  IP keeps the last two octets and moves the second octet by 100: 10.1.10.23 -> 10.101.10.23.
- `eks_clusters`: primary EKS cluster + DR twin, hosted zone, failover records and health check,
  emulated add-ons and Kubernetes workloads; `{name, wave}` seeds a healthy pair (`estate_eks.py`).
- `efs`, `load_balancers`, `caches` and `private_zone` (managed services): EFS file systems
  replicated to the DR region, ALB/NLB pairs with their Route 53 failover names, ElastiCache
  groups with DR twins and endpoint records, and the private hosted zone
  of servers tagged `dr:managed:dns-record`; `{name, wave}` seeds healthy ones
  (`estate_managed.py`, `seed_managed.py`).
- `sql_ags`: SQL Server availability groups (primary and DR replica instances, listener record,
  optional clone; SQL Server emulated behind SSM Run Command); `{name, wave}` seeds a healthy,
  SYNCHRONIZED group (`estate_sqlag.py`, `seed_sqlag.py`).
- Every environment gets a bubble-test network in the DR region unless `bubble_network: false`:
  an isolated VPC `dr-bubble-<customer>-<environment>` mirroring the customer's /16 (drilled
  servers keep their IPs; nothing routes out) and a security group tagged `dr:bubble-role=drill`.
- `quotas: {drs: {servers_per_job: 5, concurrent_jobs: 2, servers_in_active_jobs: 8}}` sets the
  DRS quotas (Service Quotas applied values, enforced by the DRS emulator) of every account in
  every region of the estate; unset ones keep the AWS defaults (100, 20, 500).

`load_estate(path)` raises `EstateError` whose message names the file, the line, the key path
(e.g. `customers[0].environments[0].servers[3].ip`) and the bad value.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
)

from .estate_eks import EksCluster
from .estate_managed import ZONE_NAME, CacheSpec, EfsSpec, FsxOntapSpec, LoadBalancerSpec
from .estate_sqlag import SqlAgSpec

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
Priority = Literal["critical", "high", "medium", "low"]
ReplicationState = Literal[
    "STOPPED",
    "INITIATING",
    "INITIAL_SYNC",
    "BACKLOG",
    "CREATING_SNAPSHOT",
    "CONTINUOUS",
    "PAUSED",
    "RESCAN",
    "STALLED",
    "DISCONNECTED",
]
TagValue = str | int | float | bool | None

RTO_WAVE_1 = 15
RTO_OTHER = 240
RPO = 15
DEFAULT_LAG_SECONDS = 30.0
DR_OCTET_SHIFT = 100


@functools.cache
def known_regions() -> frozenset[str]:
    """Region names of the commercial partition, from botocore's endpoint data."""
    import boto3

    return frozenset(boto3.session.Session().get_available_regions("ec2"))


# --------------------------------------------------------------------------------------------
# The file's shape


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Replication(_Model):
    state: ReplicationState = "CONTINUOUS"
    lag_seconds: float = Field(default=DEFAULT_LAG_SECONDS, ge=0)


class ServerSpec(_Model):
    name: str = Field(pattern=NAME_PATTERN)
    wave: int | None = Field(default=None, ge=1)
    priority: Priority | None = None
    ip: str | None = None
    twin: bool | None = None
    replication: Replication | None = None
    tags: dict[str, TagValue] = Field(default_factory=dict)
    os: str | None = None
    instance_type: str | None = None

    @field_validator("ip")
    @classmethod
    def _ipv4(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ipaddress.IPv4Address(value)
            except ValueError:
                raise ValueError("not a valid IPv4 address") from None
        return value


class Generate(_Model):
    servers: int = Field(ge=1)
    waves: int = Field(default=1, ge=1)

    @field_validator("waves")
    @classmethod
    def _waves(cls, value: int, info: Any) -> int:
        servers = info.data.get("servers")
        if servers is not None and value > servers:
            raise ValueError(f"waves ({value}) cannot exceed servers ({servers})")
        return value


class Component(BaseModel):
    """An EKS cluster, SQL AG or EFS file system: `name` and `wave`, other keys kept as given."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(pattern=NAME_PATTERN)
    wave: int = Field(ge=1)


HookOutcome = Literal["Success", "Failed", "TimedOut", "Cancelled"]


class HookBehaviour(_Model):
    """One pre- or post-wave hook of an environment, as the sandbox runs it (SSM Automation):
    `outcomes` of its successive executions (the last repeats), how long each takes, the failure
    message, and the waves it applies to (default: every wave)."""

    outcomes: list[HookOutcome] = Field(default=["Success"], min_length=1)
    seconds: float = Field(default=1.0, ge=0, le=3600)
    message: str | None = None
    waves: list[int] | None = None


class Hooks(_Model):
    pre_wave: HookBehaviour | None = None
    post_wave: HookBehaviour | None = None


class Environment(_Model):
    name: str = Field(pattern=NAME_PATTERN)
    production: bool | None = None
    generate: Generate | None = None
    servers: list[ServerSpec] = Field(default_factory=list)
    eks_clusters: list[EksCluster] = Field(default_factory=list)  # see estate_eks.py
    sql_ags: list[SqlAgSpec] = Field(default_factory=list)  # see estate_sqlag.py
    efs: list[EfsSpec] = Field(default_factory=list)  # see estate_managed.py
    load_balancers: list[LoadBalancerSpec] = Field(default_factory=list)
    caches: list[CacheSpec] = Field(default_factory=list)
    fsx_ontap: list[FsxOntapSpec] = Field(default_factory=list)  # see estate_managed.py
    # Private hosted zone of the environment (managed: records that follow servers).
    private_zone: str | None = Field(default=None, pattern=ZONE_NAME)
    # Pre/post-wave hooks (`sandbox.emulators.ssm_automation.seed_hooks` creates them).
    hooks: Hooks | None = None
    # An isolated VPC in the DR region for bubble-test drills (see the module docstring).
    bubble_network: bool = True

    @property
    def is_production(self) -> bool:
        if self.production is not None:
            return self.production
        return self.name.lower() in ("production", "prod")


class Customer(_Model):
    name: str = Field(pattern=NAME_PATTERN)
    account: str = Field(pattern=r"^\d{12}$")
    region: str
    environments: list[Environment] = Field(min_length=1)


class Timing(_Model):
    drs_launch_seconds: tuple[float, float] = (2.0, 6.0)

    @field_validator("drs_launch_seconds")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if low < 0 or high < 0 or not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError("launch seconds must be finite and >= 0")
        if low > high:
            raise ValueError(f"min {low} is greater than max {high}")
        return value


class DrsQuotas(_Model):
    """DRS quotas (Service Quotas applied values); None keeps the AWS default."""

    servers_per_job: int | None = Field(default=None, ge=1, le=100)
    concurrent_jobs: int | None = Field(default=None, ge=1)
    servers_in_active_jobs: int | None = Field(default=None, ge=1)


class Quotas(_Model):
    drs: DrsQuotas = Field(default_factory=DrsQuotas)


class Faults(_Model):
    drs_launch_failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    throttle_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    drop_native_event_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    # Regions whose APIs are down (every call to them fails; the seeder is not affected). Left
    # out of the dump when empty, like the sandbox knob of the same name.
    regions_down: list[str] = Field(default_factory=list)

    @field_validator("regions_down")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        for region in value:
            if region not in known_regions():
                raise ValueError(f"{region!r} is not an AWS region")
        return value

    @model_serializer(mode="wrap")
    def _omit_empty_outage(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not self.regions_down:
            data.pop("regions_down", None)
        return data


@dataclass(frozen=True)
class EstateServer:
    """One concrete server, with its customer, environment, account and regions attached."""

    customer: str
    environment: str
    production: bool
    account: str
    primary_region: str
    dr_region: str
    name: str
    wave: int
    priority: str
    ip: str
    dr_ip: str
    twin: bool
    replication_state: str
    lag_seconds: float
    tags: dict[str, str] = field(hash=False)
    os: str = "Microsoft Windows Server 2022 Datacenter"
    instance_type: str = "m5.large"


class Estate(_Model):
    regions: dict[str, str] = Field(min_length=1)
    timing: Timing = Field(default_factory=Timing)
    faults: Faults = Field(default_factory=Faults)
    customers: list[Customer] = Field(min_length=1)
    quotas: Quotas = Field(default_factory=Quotas)

    def servers(self) -> list[EstateServer]:
        """Every concrete server of every customer and environment (generated + explicit)."""
        return [server for _, server in _concrete(self)]

    def customer(self, name: str) -> Customer | None:
        return next((c for c in self.customers if c.name == name), None)

    def dr_region(self, customer: Customer) -> str:
        return self.regions[customer.region]


class EstateError(ValueError):
    """A bad estate file; the message names the file, the key path and the bad value."""

    def __init__(
        self,
        file: str,
        key: str,
        value: Any,
        reason: str,
        line: int | None = None,
    ) -> None:
        self.file, self.key, self.value, self.reason, self.line = file, key, value, reason, line
        where = f"{file}:{line}" if line else file
        shown = "" if value is _NO_VALUE else f" = {value!r}"
        super().__init__(f"{where}: {key}{shown}: {reason}")


_NO_VALUE: Any = object()


# --------------------------------------------------------------------------------------------
# Generation and the checks pydantic cannot do alone


class _Problem(Exception):
    def __init__(self, path: list[str | int], value: Any, reason: str) -> None:
        super().__init__(reason)
        self.path, self.value, self.reason = path, value, reason


def key_path(parts: list[str | int] | tuple[str | int, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def _short_env(name: str) -> str:
    lowered = name.lower()
    return {"production": "prod", "staging": "stg", "development": "dev"}.get(lowered, lowered)


def wave_sizes(servers: int, waves: int) -> list[int]:
    """Wave 1 small (AD/DNS), the rest spread evenly, earlier waves taking the remainder."""
    if waves == 1:
        return [servers]
    first = max(1, min(servers - (waves - 1), max(2, servers // 12)))
    rest = servers - first
    base, extra = divmod(rest, waves - 1)
    return [first] + [base + (1 if i < extra else 0) for i in range(waves - 1)]


def _role(wave: int, waves: int) -> tuple[str, str]:
    if wave == 1:
        return "infra", "critical"
    if wave == 2:
        return "db", "high"
    if waves >= 4 and wave == waves:
        return "web", "low"
    return "app", "medium"


def generated_servers(
    customer: Customer, customer_index: int, env: Environment, env_index: int
) -> list[dict[str, Any]]:
    """The `generate:` shorthand as plain server dicts (deterministic)."""
    if env.generate is None:
        return []
    prefix = f"{customer.name}-{_short_env(env.name)}"
    counters: dict[str, int] = {}
    out = []
    position = 0
    for wave, size in enumerate(wave_sizes(env.generate.servers, env.generate.waves), start=1):
        role, priority = _role(wave, env.generate.waves)
        for i in range(size):
            if role == "infra":
                kind = ("ad", "dns")[i % 2]
                counters[kind] = counters.get(kind, 0) + 1
                name = f"{prefix}-{kind}-{counters[kind]:02d}"
            else:
                counters[role] = counters.get(role, 0) + 1
                name = f"{prefix}-{role}-{counters[role]:03d}"
            third = 10 + 20 * env_index + position // 200
            fourth = 10 + position % 200
            out.append(
                {
                    "name": name,
                    "wave": wave,
                    "priority": priority,
                    "ip": f"10.{customer_index + 1}.{third}.{fourth}",
                    "twin": True,
                    "replication": Replication(),
                }
            )
            position += 1
    return out


def dr_ip(ip: str) -> str:
    a, b, c, d = ip.split(".")
    return f"{a}.{(int(b) + DR_OCTET_SHIFT) % 256}.{c}.{d}"


def customer_network(ip: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"{ip}/16", strict=False)


def _tags(
    server: dict[str, Any], customer: str, env: str, explicit: dict[str, TagValue]
) -> dict[str, str]:
    tags: dict[str, TagValue] = {
        "Name": server["name"],
        "Customer": customer,
        "Environment": env,
        "dr:enabled": "true",
        "dr:priority": server["priority"],
        "dr:wave": str(server["wave"]),
        "dr:recovery-strategy": "drs",
        "dr:rto-target": str(RTO_WAVE_1 if server["wave"] == 1 else RTO_OTHER),
        "dr:rpo-target": str(RPO),
    }
    tags.update(explicit)
    out = {}
    for key, value in tags.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def _concrete(estate: Estate) -> Iterator[tuple[list[str | int], EstateServer]]:
    """Yield (key path, server); raises `_Problem` for what only the whole estate can tell."""
    for ci, customer in enumerate(estate.customers):
        seen_ips: dict[str, str] = {}
        network: ipaddress.IPv4Network | None = None
        dr_region = estate.regions[customer.region]
        for ei, env in enumerate(customer.environments):
            env_path: list[str | int] = ["customers", ci, "environments", ei]
            servers: dict[str, dict[str, Any]] = {}
            paths: dict[str, list[str | int]] = {}
            for item in generated_servers(customer, ci, env, ei):
                servers[item["name"]] = item
                paths[item["name"]] = [*env_path, "generate"]
            explicit_names: set[str] = set()
            for si, spec in enumerate(env.servers):
                path: list[str | int] = [*env_path, "servers", si]
                if spec.name in explicit_names:
                    raise _Problem([*path, "name"], spec.name, "duplicate server name")
                explicit_names.add(spec.name)
                base = servers.get(spec.name, {})
                given = spec.model_dump(exclude_none=True, exclude={"tags"})
                if "replication" in given:
                    given["replication"] = spec.replication
                merged = {"twin": True, "priority": "medium", "replication": Replication()}
                merged.update(base)
                merged.update(given)
                merged["explicit_tags"] = spec.tags
                for required in ("wave", "ip"):
                    if required not in merged:
                        raise _Problem(
                            [*path, required],
                            _NO_VALUE,
                            f"required for a server that `generate` does not make ({spec.name})",
                        )
                servers[spec.name] = merged
                paths[spec.name] = path
            for name, item in servers.items():
                path = paths[name]
                ip = item["ip"]
                ip_path = [*path, "ip"] if path[-2] == "servers" else path
                if network is None:
                    network = customer_network(ip)
                elif ipaddress.IPv4Address(ip) not in network:
                    raise _Problem(
                        ip_path,
                        ip,
                        f"not in the customer's network {network} (all of a customer's servers "
                        "share one /16)",
                    )
                if ip in seen_ips:
                    raise _Problem(ip_path, ip, f"IP already used by {seen_ips[ip]}")
                seen_ips[ip] = name
                replication: Replication = item["replication"]
                extra: dict[str, Any] = {}
                if item.get("os"):
                    extra["os"] = item["os"]
                if item.get("instance_type"):
                    extra["instance_type"] = item["instance_type"]
                yield (
                    path,
                    EstateServer(
                        customer=customer.name,
                        environment=env.name,
                        production=env.is_production,
                        account=customer.account,
                        primary_region=customer.region,
                        dr_region=dr_region,
                        name=name,
                        wave=item["wave"],
                        priority=item["priority"],
                        ip=ip,
                        dr_ip=dr_ip(ip),
                        twin=item["twin"],
                        replication_state=replication.state,
                        lag_seconds=replication.lag_seconds,
                        tags=_tags(item, customer.name, env.name, item.get("explicit_tags", {})),
                        **extra,
                    ),
                )


def check_estate(estate: Estate) -> None:
    """The checks across fields; raises `_Problem` naming the key path."""
    regions = known_regions()
    for key, value in estate.regions.items():
        if key not in regions:
            raise _Problem(["regions", key], key, "unknown AWS region (primary)")
        if value not in regions:
            raise _Problem(["regions", key], value, "unknown AWS region (DR)")
        if key == value:
            raise _Problem(["regions", key], value, "the DR region must differ from the primary")
    names: set[str] = set()
    for ci, customer in enumerate(estate.customers):
        if customer.name in names:
            raise _Problem(["customers", ci, "name"], customer.name, "duplicate customer name")
        names.add(customer.name)
        if customer.region not in estate.regions:
            raise _Problem(
                ["customers", ci, "region"],
                customer.region,
                f"not a primary region of the region map ({', '.join(estate.regions)})",
            )
        envs: set[str] = set()
        for ei, env in enumerate(customer.environments):
            if env.name in envs:
                raise _Problem(
                    ["customers", ci, "environments", ei, "name"], env.name, "duplicate name"
                )
            envs.add(env.name)
    for _ in _concrete(estate):
        pass


# --------------------------------------------------------------------------------------------
# Loading


def _line_of(root: yaml.Node | None, path: list[str | int]) -> int | None:
    """The 1-based line of the node at `path` in the composed YAML (best effort)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    nxt = value
                    line = key.start_mark.line + 1
                    break
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
            if node is not None:
                line = node.start_mark.line + 1
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1 if isinstance(node, yaml.ScalarNode) else line
    return line


def _value_at(data: Any, path: list[str | int]) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return _NO_VALUE
    return data


def _data_path(data: Any, loc: list[str | int]) -> list[str | int]:
    """pydantic's error location as a path in the data: drops the tags pydantic adds for union
    members and validators (`str`, `function-after[...]`), keeps a last key that is missing."""
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        found = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if found:
            node = node[part]
            path.append(part)
        elif index == len(loc) - 1 and isinstance(node, dict) and isinstance(part, str):
            path.append(part)  # a missing key
    return path


def parse_estate(text: str, file: str = "<estate>") -> Estate:
    """Parse and validate estate YAML text; raises `EstateError`."""
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        column = f", column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        context = getattr(err, "context", None)
        reason = f"YAML syntax error{column}: {problem}" + (f" ({context})" if context else "")
        near = ""
        if mark is not None:
            lines = text.splitlines()
            if 0 <= mark.line < len(lines):
                near = lines[mark.line].strip()
        raise EstateError(file, "<yaml>", near or _NO_VALUE, reason, line) from None
    if not isinstance(data, dict):
        raise EstateError(file, "<root>", data, "an estate file is a YAML mapping", 1)
    try:
        estate = Estate.model_validate(data)
    except ValidationError as err:
        errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        path = _data_path(data, list(first["loc"]))
        value = _value_at(data, path)
        reason = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "missing":
            reason = "required key is missing"
        elif first["type"] == "extra_forbidden":
            reason = "unknown key"
        more = len(errors) - 1
        if more:
            reason += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise EstateError(file, key_path(path), value, reason, _line_of(root, path)) from None
    try:
        check_estate(estate)
    except _Problem as problem:
        line = _line_of(root, problem.path)
        raise EstateError(
            file, key_path(problem.path), problem.value, problem.reason, line
        ) from None
    return estate


def load_estate(path: str | Path) -> Estate:
    """Read, parse and validate an estate file; raises `EstateError` (file, key path, value)."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise EstateError(
            file, "<file>", _NO_VALUE, f"cannot read the file: {err.strerror}"
        ) from None
    return parse_estate(text, file)
