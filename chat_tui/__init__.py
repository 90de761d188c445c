"""chat-tui: a terminal chat with reliable delivery through RabbitMQ."""

__version__ = "0.1.0"
