"""STS: temporary credentials for users, roles and federated identities."""
