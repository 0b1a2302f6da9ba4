"""The local runtime's adapters: no account, no network."""
