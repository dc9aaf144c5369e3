# Quickstart: one time-sliced L4 pool on an existing cluster, one service at a quarter GPU.
# The same stack as examples/quickstart (Pulumi) and its spec.yaml (infra-inference render);
# a test checks that `terraform apply` creates exactly the objects those give.

terraform {
  required_providers {
    # Resource types infra_inference_* belong to the provider whose local name is "infra".
    infra = {
      source = "infra-inference/infra-inference"
    }
  }
}

variable "kubeconfig_path" {
  type        = string
  description = "Kubeconfig of the cluster to deploy to."
  default     = "~/.kube/config"
}

variable "max_replicas" {
  type    = number
  default = 8
}

provider "infra" {
  kubeconfig_path = var.kubeconfig_path
}

resource "infra_inference_platform" "platform" {
  namespace = "inference"
}

# Four slots per GPU: a 0.25-GPU replica takes exactly one.
resource "infra_inference_gpu_pool" "gpu" {
  name          = "gpu"
  cloud         = "existing"
  cluster       = "dev"
  gpu_type      = "l4"
  gpus_per_node = 1
  min_nodes     = 1
  max_nodes     = 2
  sharing = {
    strategy         = "time-slicing"
    replicas_per_gpu = 4
  }
}

resource "infra_inference_service" "chat" {
  name         = "chat"
  namespace    = infra_inference_platform.platform.namespace
  pool         = infra_inference_gpu_pool.gpu.ref
  gpu_fraction = 0.25
  model = {
    uri    = "https://models.example.com/echo.safetensors"
    format = "safetensors"
    name   = "chat"
  }
  runtime = {
    max_concurrency = 8
    max_queue       = 32
    timeout_s       = 30
  }
  autoscale = {
    metric                = "concurrency"
    min_replicas          = 0
    max_replicas          = var.max_replicas
    scale_to_zero_after_s = 300
  }
}

# One placeholder holding a node's worth of slots keeps the next node warm.
resource "infra_inference_standby_pool" "warm" {
  name      = "warm"
  namespace = infra_inference_platform.platform.namespace
  pool      = infra_inference_gpu_pool.gpu.ref
  instances = 1
}

output "url" {
  value = infra_inference_service.chat.url
}

output "gpu_resource" {
  value = infra_inference_gpu_pool.gpu.gpu_resource
}
