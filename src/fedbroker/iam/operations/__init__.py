"""Every IAM operation, grouped by what it manages. Importing this package registers them."""

from fedbroker.iam.operations import access_keys, groups, policies, roles, users

__all__ = ["access_keys", "groups", "policies", "roles", "users"]
