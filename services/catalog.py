"""Every deployed consuming service, from its own `subscriptions.py` (imports stay light)."""

from drcore.subscriptions import ServiceSpec
from services.coordinator.subscriptions import SERVICE as COORDINATOR
from services.discovery.subscriptions import SERVICE as DISCOVERY
from services.drs.subscriptions import SERVICE as DRS
from services.eks.subscriptions import SERVICE as EKS
from services.managed.subscriptions import SERVICE as MANAGED
from services.metrics.subscriptions import SERVICE as METRICS
from services.sqlag.subscriptions import SERVICE as SQLAG

SERVICES: tuple[ServiceSpec, ...] = (DISCOVERY, COORDINATOR, DRS, METRICS, EKS, MANAGED, SQLAG)
