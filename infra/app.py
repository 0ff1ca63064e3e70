"""The CDK app: `python -m infra.app --config infra/config.yaml` (what `make synth` and the
`cdk` CLI run). Synthesizes offline: no AWS call, no Docker, no download.

Stacks:
  DrOrchestration            orchestration account, DR region (infra/orchestration.py)
  DrWorkloadAccess           every workload account (StackSet template, infra/workload.py)
  DrWorkloadEventForwarding  every DR region of every workload account (StackSet template)
  DrResourceExplorer         every region of every workload account (StackSet template)
  DrBubble-<customer>-<env>  one per configured bubble network (infra/bubble.py)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

# jsii prints a banner on every start when Node.js is past its end of life (the machine's Node
# still works: upgrade it when you can); keep synth output readable.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "14,16,18,20")

from aws_cdk import App, Environment, Tags

from drcore.subscriptions import ServiceSpec

from .bubble import BubbleNetworkStack
from .config import ConfigError, InfraConfig, load_config
from .monitoring import Monitoring
from .nag import add_checks
from .orchestration import OrchestrationStack
from .resource_explorer import ResourceExplorerStack
from .workload import WorkloadAccessStack, WorkloadEventForwardingStack

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_ENV = "DR_INFRA_CONFIG"
DEFAULT_CONFIG = REPO_ROOT / "infra" / "config.yaml"


def build_app(
    config: InfraConfig,
    outdir: str | Path | None = None,
    services: Sequence[ServiceSpec] | None = None,
    nag: bool = True,
) -> App:
    """Every stack of the system, with the cdk-nag packs attached (they run at `synth()`)."""
    if services is None:
        from services.catalog import SERVICES

        services = SERVICES
    app = App(outdir=str(outdir) if outdir else None)
    assembly_dir = Path(app.outdir)
    build_dir = assembly_dir / ".lambda-packages"

    orchestration = config.orchestration
    stack = OrchestrationStack(
        app,
        "DrOrchestration",
        config=config,
        services=services,
        build_dir=build_dir,
        env=Environment(account=orchestration.account, region=orchestration.region),
        description="DR orchestration: bus, archive, rules, queues, functions, tables, "
        "topics, dashboards, alarms",
        termination_protection=True,
    )
    Monitoring(stack)
    WorkloadAccessStack(app, "DrWorkloadAccess", config=config, services=services)
    WorkloadEventForwardingStack(app, "DrWorkloadEventForwarding", config=config)
    ResourceExplorerStack(app, "DrResourceExplorer", aggregator_region=orchestration.region)
    for bubble in config.bubble_networks:
        customer = config.customer(bubble.customer)
        assert customer is not None  # the configuration checked it
        BubbleNetworkStack(
            app,
            f"DrBubble-{bubble.customer}-{bubble.environment}".replace(".", "-"),
            bubble=bubble,
            env=Environment(
                account=bubble.account or customer.account,
                region=bubble.region or customer.dr_region,
            ),
            description=f"DR bubble-test network of {bubble.customer}/{bubble.environment}",
        )
    for key, value in config.tags.items():
        Tags.of(app).add(key, value)
    if nag:
        add_checks(app)
    return app


def config_path(explicit: str | None) -> Path:
    chosen = explicit or os.environ.get(CONFIG_ENV)
    return Path(chosen) if chosen else DEFAULT_CONFIG


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.app", description=__doc__)
    parser.add_argument(
        "--config", help=f"configuration file (default: ${CONFIG_ENV} or infra/config.yaml)"
    )
    parser.add_argument("--outdir", help="cloud assembly directory (default: the cdk CLI's)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        config = load_config(config_path(args.config))
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    app = build_app(config, args.outdir)
    try:
        assembly = app.synth()
    except RuntimeError as error:  # cdk-nag findings or another validation failure
        print(f"synth failed: {error}", file=sys.stderr)
        return 1
    print(
        f"synthesized {len(assembly.stacks)} stacks into {assembly.directory} "
        f"in {time.monotonic() - started:.1f} s (cdk-nag AwsSolutions + HIPAA: no findings)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
