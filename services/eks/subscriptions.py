"""eks recovers the `eks-dns` part of each wave (failover, failback, bubble-test) and answers the
coordinator's reconciler for its resources."""

from drcore.subscriptions import ServiceSpec, Subscription
from events.schemas import DetailType, Source, Strategy

SERVICE = ServiceSpec(
    name="eks",
    handler="services.eks.handler:handler",
    subscriptions=(
        Subscription(
            name="wave-started",
            sources=(Source.COORDINATOR,),
            detail_types=(DetailType.WAVE_STARTED,),
            detail={"strategy": [Strategy.EKS_DNS.value]},
        ),
        Subscription(
            name="resource-check",
            sources=(Source.COORDINATOR,),
            detail_types=(DetailType.RESOURCE_CHECK_REQUESTED,),
            detail={"strategy": [Strategy.EKS_DNS.value]},
        ),
    ),
    # A flip waits for Route 53's health check status to change (about 30-90 s in AWS).
    visibility_timeout=300,
    batch_size=5,
)
