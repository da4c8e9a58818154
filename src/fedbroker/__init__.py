"""fedbroker: a self-hostable identity and access broker in the shape of AWS IAM + STS."""

__version__ = "0.1.0"
