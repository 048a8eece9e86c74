"""Deployment files checked offline: Kubernetes manifests, the compose file, their commands."""
