"""EKS managed node group for a GpuPool: the settings of render/clouds.py as typed pulumi_aws args."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws

from infra_inference.render.clouds import eks_node_group
from infra_inference.specs.pool import GpuPoolSpec


def launch_template(name: str, metadata_options: dict[str, Any],
                    opts: pulumi.ResourceOptions) -> aws.ec2.LaunchTemplate:
    return aws.ec2.LaunchTemplate(
        f"{name}-launch-template",
        metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(**metadata_options),
        opts=opts,
    )


def node_group(name: str, spec: GpuPoolSpec, arg: Callable[[str], Any],
               opts: pulumi.ResourceOptions) -> aws.eks.NodeGroup:
    s = eks_node_group(name, spec)
    template = launch_template(name, s["metadata_options"], opts)
    # The cluster autoscaler moves desired_size; ignoring it keeps `pulumi up` from undoing that.
    opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(ignore_changes=["scalingConfig.desiredSize"]))
    return aws.eks.NodeGroup(
        f"{name}-nodegroup",
        cluster_name=arg("cluster"),
        node_group_name=s["node_group_name"],
        node_role_arn=arg("node_role_arn"),
        subnet_ids=arg("subnet_ids"),
        instance_types=s["instance_types"],
        ami_type=s["ami_type"],
        launch_template=aws.eks.NodeGroupLaunchTemplateArgs(id=template.id, version=template.latest_version.apply(str)),
        capacity_type=s["capacity_type"],
        scaling_config=aws.eks.NodeGroupScalingConfigArgs(**s["scaling_config"]),
        labels=s["labels"],
        taints=[aws.eks.NodeGroupTaintArgs(**t) for t in s["taint"]],
        opts=opts,
    )
