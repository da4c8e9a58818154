"""The IAM management API: one function per operation, framework-free."""
