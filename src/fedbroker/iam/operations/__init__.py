"""Every IAM operation, grouped by what it manages. Importing this package registers them."""

from fedbroker.iam.operations import access_keys, groups, policies, roles, users
from fedbroker.iam.operations import account as account
from fedbroker.iam.operations import simulation as simulation

__all__ = ["access_keys", "groups", "policies", "roles", "users"]
