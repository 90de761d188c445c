"""`chat-tui admin`: accounts, permissions and the shared topology, through the RabbitMQ
management HTTP API."""
