"""Flask adapters: turn HTTP into service calls and service results into the wire format."""
