"""Every IAM operation, grouped by what it manages. Importing this package registers them."""

from fedbroker.iam.operations import access_keys, groups, policies, roles, users
from fedbroker.iam.operations import account as account
from fedbroker.iam.operations import login_profiles as login_profiles
from fedbroker.iam.operations import mfa_devices as mfa_devices
from fedbroker.iam.operations import oidc_providers as oidc_providers
from fedbroker.iam.operations import password_policy as password_policy
from fedbroker.iam.operations import saml_providers as saml_providers
from fedbroker.iam.operations import simulation as simulation

__all__ = ["access_keys", "groups", "policies", "roles", "users"]
