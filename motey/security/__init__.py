"""The cell's security: identities, credentials, API tokens."""
