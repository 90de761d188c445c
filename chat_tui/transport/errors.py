"""What the transport raises to the core: a refusal that says what to do, or trouble
that a retry may get past; and the two readings of aiormq's errors that every link
needs to tell them apart."""

from __future__ import annotations

import ssl


class TransportError(Exception):
    """Base of the errors the transport raises to the core."""


class BrokerUnreachable(TransportError):
    pass


class QueueUnavailable(BrokerUnreachable):
    """The broker answered, but one of our queues is down: its node is down (on a
    cluster, until that node is back) or RabbitMQ lost it. Retried like a broker that
    does not answer, but said as what it is: starting a broker is not the answer."""

    def __init__(self, text: str, queue: str) -> None:
        super().__init__(text)
        self.queue = queue


class BrokerRefused(TransportError):
    """The broker said no for good; the text says what was refused and what to do."""


class AuthenticationRefused(BrokerRefused):
    """The login (or its access to the virtual host) was refused."""


class CertificateRefused(BrokerRefused):
    """The broker's TLS certificate could not be verified."""


class SetupRefused(BrokerRefused):
    """Setting up was refused: a missing object, a missing right, other arguments."""


class PublishFailed(TransportError):
    """Not confirmed (nack, timeout, lost connection): the outbox keeps it and retries."""


class PublishReturned(TransportError):
    """The broker had no queue to route it to: retrying cannot help."""


class PublishRefused(PublishReturned):
    """The broker refused the message itself (a right, its user_id, its size): retrying
    cannot help either, so the outbox gives it up the same way."""


def described(exc: BaseException) -> str:
    """An exception in words: its text, or its class for one without (a bare timeout)."""
    return str(exc) or type(exc).__name__


def broker_reply(exc: BaseException) -> str:
    """The broker's own words (aiormq keeps the reply text as the first argument)."""
    return str(exc.args[-1]) if exc.args else type(exc).__name__


def certificate_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The failed certificate check behind `exc`: aiormq wraps it in an AMQPConnectionError."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__
    return None
