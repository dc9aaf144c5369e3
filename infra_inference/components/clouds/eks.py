"""EKS managed node group for a GpuPool."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws

from infra_inference.render.pool import node_labels
from infra_inference.specs.gpus import EKS_GPU_AMI_TYPE
from infra_inference.specs.pool import GpuPoolSpec


def launch_template(name: str, opts: pulumi.ResourceOptions) -> aws.ec2.LaunchTemplate:
    """IMDSv2 only, one hop: a pod (one hop further than the node, through its network namespace)
    cannot reach the instance metadata service, so it cannot take the node role's credentials."""
    return aws.ec2.LaunchTemplate(
        f"{name}-launch-template",
        metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
            http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1),
        opts=opts,
    )


def node_group(name: str, spec: GpuPoolSpec, arg: Callable[[str], Any], opts: pulumi.ResourceOptions) -> aws.eks.NodeGroup:
    template = launch_template(name, opts)
    # The cluster autoscaler moves desired_size; ignoring it keeps `pulumi up` from undoing that.
    opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(ignore_changes=["scalingConfig.desiredSize"]))
    return aws.eks.NodeGroup(
        f"{name}-nodegroup",
        cluster_name=arg("cluster"),
        node_group_name=name,
        node_role_arn=arg("node_role_arn"),
        subnet_ids=arg("subnet_ids"),
        instance_types=[spec.resolved_machine_type],
        ami_type=EKS_GPU_AMI_TYPE,
        launch_template=aws.eks.NodeGroupLaunchTemplateArgs(id=template.id, version=template.latest_version.apply(str)),
        capacity_type="SPOT" if spec.spot else "ON_DEMAND",
        scaling_config=aws.eks.NodeGroupScalingConfigArgs(
            min_size=spec.min_nodes, max_size=spec.max_nodes, desired_size=spec.min_nodes),
        labels=node_labels(name, spec),
        taints=[aws.eks.NodeGroupTaintArgs(key=t.key, value=t.value, effect=t.cloud_effect)
                for t in spec.effective_taints],
        opts=opts,
    )
