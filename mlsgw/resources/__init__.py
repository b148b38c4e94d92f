"""Kinds of cloud resources a runbook action changes: the interface (:mod:`.base`) and one
module per kind (Cloud Run service, a service's IAM policy, ...)."""

from mlsgw.resources.base import Mutation, Resource

__all__ = ["Mutation", "Resource"]
