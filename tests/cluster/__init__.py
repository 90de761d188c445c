"""Cluster scenarios: chat-tui with quorum queues on a private 3-node RabbitMQ cluster."""
