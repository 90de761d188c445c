"""chat-tui's benchmark suite: each metric beside plain aio-pika on the same broker.

Run it with `python -m bench --quick` or `python -m bench --full` (`make bench`); it is
not part of the test suite, because the numbers depend on the machine.
"""
