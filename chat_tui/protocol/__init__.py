"""The wire protocol: message models, ID rules and broker names (docs/protocol.md)."""
