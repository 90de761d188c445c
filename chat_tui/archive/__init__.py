"""The archive service (`chat-tui archive`): every message stored, for history and search."""
