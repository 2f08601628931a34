"""Who is on the other end of a request."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

from django.conf import settings
from django.http import HttpRequest


def _trusted(address: IPv4Address | IPv6Address) -> bool:
    return any(address in network for network in settings.IAMPORTAL_TRUSTED_PROXIES)


def peer_is_trusted_proxy(request: HttpRequest) -> bool:
    """Whether the TCP peer is one of IAMPORTAL_TRUSTED_PROXIES."""
    try:
        return _trusted(ip_address(request.META.get("REMOTE_ADDR") or ""))
    except ValueError:
        return False


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: the TCP peer, or, when the peer is one of
    IAMPORTAL_TRUSTED_PROXIES, the right-most X-Forwarded-For entry that is not a
    trusted proxy (entries further left were written by the client and may be
    forged). Used for the audit, the CLI login's address binding and rate limits."""
    peer = request.META.get("REMOTE_ADDR") or None
    try:
        if peer is None or not _trusted(ip_address(peer)):
            return peer
    except ValueError:
        return peer
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    hops = [hop for hop in hops if hop]
    for hop in reversed(hops):
        try:
            address = ip_address(hop)
        except ValueError:
            return peer  # a malformed chain proves nothing
        if not _trusted(address):
            return str(address)
    return peer
