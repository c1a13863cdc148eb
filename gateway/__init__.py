"""The customer-service messaging gateway: one ticket model for every channel."""

__version__ = "0.1.0"
