"""The aio-pika transport: one robust connection, topology, publishing and consuming."""
