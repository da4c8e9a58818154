"""Examples of services built on fedbroker (not part of the installed package)."""
