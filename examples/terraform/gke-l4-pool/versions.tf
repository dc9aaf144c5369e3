terraform {
  required_providers {
    # Resource types infra_inference_* belong to the provider whose local name is "infra".
    infra = {
      source = "infra-inference/infra-inference"
    }
    google = {
      source = "hashicorp/google"
    }
  }
}

variable "project" {
  type = string
}

variable "region" {
  type    = string
  default = "us-central1"
}

variable "cluster" {
  type        = string
  description = "Name of an existing GKE cluster in var.region."
}

variable "kubeconfig_path" {
  type    = string
  default = "~/.kube/config"
}

provider "google" {
  project = var.project
  region  = var.region
}

provider "infra" {
  kubeconfig_path = var.kubeconfig_path
}
