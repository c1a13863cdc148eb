"""The agent API under ``/api/v1/``: JSON, sessions or bearer tokens, roles, OpenAPI."""
