"""The client core: send path with outbox, receive pipeline, receipts, directory."""
