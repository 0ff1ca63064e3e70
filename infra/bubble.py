"""The bubble-test network of one customer environment (its account, its DR region).

An isolated VPC for drills: the subnets mirror production's CIDRs so drilled servers keep their
IPs, which is safe only because nothing routes out: no internet or NAT gateway, no peering, no
transit gateway, route tables with the local route alone. DHCP options point DNS at the cloned
AD domain controllers, so drilled servers resolve the domain inside the bubble. The default
security group is emptied; flow logs go to an encrypted log group; interface endpoints for SSM
keep drilled servers manageable (SQL AG checks on the clone) without any route out.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy, Stack, Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from drcore import tags as T

from .config import LOG_RETENTION_DAYS, BubbleNetworkConfig
from .nag import acknowledge
from .orchestration import logical_id

SSM_ENDPOINTS = ("ssm", "ssmmessages", "ec2messages")


class BubbleNetworkStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, bubble: BubbleNetworkConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # The name drills look the VPC up by (drcore.tags).
        name = T.bubble_network_name(bubble.customer, bubble.environment)
        zones = sorted({s.availability_zone for s in bubble.subnets})
        vpc = ec2.Vpc(
            self,
            "Vpc",
            vpc_name=name,
            ip_addresses=ec2.IpAddresses.cidr(bubble.cidr),
            availability_zones=zones,
            subnet_configuration=[],  # the subnets are bubble.subnets, below
            nat_gateways=0,
            create_internet_gateway=False,
            restrict_default_security_group=True,
            enable_dns_hostnames=True,
            enable_dns_support=True,
        )
        self.vpc = vpc
        route_table = ec2.CfnRouteTable(self, "RouteTable", vpc_id=vpc.vpc_id)  # local route only
        self.subnet_ids: list[str] = []
        for i, subnet in enumerate(bubble.subnets):
            resource = ec2.CfnSubnet(
                self,
                f"Subnet{i + 1}",
                vpc_id=vpc.vpc_id,
                cidr_block=subnet.cidr,
                availability_zone=subnet.availability_zone,
                map_public_ip_on_launch=False,
            )
            ec2.CfnSubnetRouteTableAssociation(
                self,
                f"Subnet{i + 1}Routes",
                subnet_id=resource.attr_subnet_id,
                route_table_id=route_table.attr_route_table_id,
            )
            self.subnet_ids.append(resource.attr_subnet_id)

        dhcp = ec2.CfnDHCPOptions(
            self,
            "DhcpOptions",
            domain_name=bubble.domain_name,
            domain_name_servers=list(bubble.ad_dns_ips),
        )
        ec2.CfnVPCDHCPOptionsAssociation(
            self, "DhcpOptionsAssociation", vpc_id=vpc.vpc_id, dhcp_options_id=dhcp.ref
        )

        key = kms.Key(
            self,
            "FlowLogKey",
            description=f"Encrypts the flow logs of {name}",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogs",
                principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:*"
                        )
                    }
                },
            )
        )
        log_group = logs.LogGroup(
            self,
            "FlowLogs",
            log_group_name=f"/dr/bubble/{bubble.customer}/{bubble.environment}/flow-logs",
            encryption_key=key,
            retention=logs.RetentionDays[LOG_RETENTION_DAYS[bubble.flow_log_retention_days]],
            removal_policy=RemovalPolicy.RETAIN,
        )
        flow_role = iam.Role(
            self,
            "FlowLogRole",
            assumed_by=iam.ServicePrincipal(
                "vpc-flow-logs.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            ),
            description=f"VPC flow logs of {name}",
        )
        flow_policy = iam.ManagedPolicy(
            self,
            "FlowLogPolicy",
            statements=[
                iam.PolicyStatement(
                    actions=[
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:DescribeLogStreams",
                    ],
                    resources=[log_group.log_group_arn, f"{log_group.log_group_arn}:*"],
                )
            ],
            roles=[flow_role],
        )
        flow_log = ec2.FlowLog(
            self,
            "FlowLog",
            resource_type=ec2.FlowLogResourceType.from_vpc(vpc),
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                log_group, flow_role.without_policy_updates()
            ),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
        flow_log.node.add_dependency(flow_policy)
        acknowledge(
            flow_policy,
            "VPC flow logs create one log stream per network interface, named by the service "
            "at run time, inside this one log group.",
            f"AwsSolutions-IAM5[Resource::<{logical_id(self, log_group)}.Arn>:*]",
        )

        # The security group drills put their servers in (found by its tag): the drilled
        # servers and the AD clone talk to each other, and to nothing outside the bubble.
        drill_sg = ec2.SecurityGroup(
            self,
            "DrillSecurityGroup",
            vpc=vpc,
            security_group_name=f"{name}-drill",
            description="Drilled servers: traffic among themselves, nothing else",
            allow_all_outbound=False,
        )
        for port, what in (
            (ec2.Port.all_tcp(), "TCP"),
            (ec2.Port.all_udp(), "UDP"),
            (ec2.Port.all_icmp(), "ICMP"),
        ):
            drill_sg.add_ingress_rule(drill_sg, port, f"{what} among drilled servers")
        drill_sg.add_egress_rule(
            ec2.Peer.ipv4(bubble.cidr), ec2.Port.all_traffic(), "Inside the bubble only"
        )
        Tags.of(drill_sg).add(T.BUBBLE_ROLE, T.BUBBLE_ROLE_DRILL)
        self.drill_security_group = drill_sg

        if bubble.ssm_endpoints:
            endpoint_sg = ec2.SecurityGroup(
                self,
                "EndpointSecurityGroup",
                vpc=vpc,
                description="HTTPS from inside the bubble to the SSM interface endpoints",
                allow_all_outbound=False,
            )
            endpoint_sg.add_ingress_rule(
                ec2.Peer.ipv4(bubble.cidr), ec2.Port.tcp(443), "HTTPS from the bubble"
            )
            for service in SSM_ENDPOINTS:
                ec2.CfnVPCEndpoint(
                    self,
                    f"Endpoint{service.title()}",
                    vpc_id=vpc.vpc_id,
                    service_name=f"com.amazonaws.{self.region}.{service}",
                    vpc_endpoint_type="Interface",
                    private_dns_enabled=True,
                    subnet_ids=self._one_subnet_per_zone(bubble),
                    security_group_ids=[endpoint_sg.security_group_id],
                )

    def _one_subnet_per_zone(self, bubble: BubbleNetworkConfig) -> list[str]:
        chosen: dict[str, str] = {}
        for subnet, subnet_id in zip(bubble.subnets, self.subnet_ids, strict=True):
            chosen.setdefault(subnet.availability_zone, subnet_id)
        return list(chosen.values())
