"""Fault injection: the proof that no message is lost (issue 4).

Run with `make test-faults` or `.venv/bin/python -m pytest -m faults tests/faults`. Needs
root (the private node runs as the `rabbitmq` user; scenario 8 uses chattr) and the
system's rabbitmq-server; it never touches the shared broker on 5672.
"""
