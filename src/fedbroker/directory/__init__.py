"""The directory: accounts, users, groups, roles, policies, providers, and the Store protocol."""
