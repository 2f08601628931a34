"""The client's address, behind trusted proxies or not."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

from django.test import RequestFactory

from iamportal.net import client_ip


def request(peer: str, forwarded: str | None = None) -> Any:
    made = RequestFactory().get("/")
    made.META["REMOTE_ADDR"] = peer
    if forwarded is not None:
        made.META["HTTP_X_FORWARDED_FOR"] = forwarded
    return made


def test_without_trusted_proxies_the_peer_is_the_client(settings: Any) -> None:
    settings.IAMPORTAL_TRUSTED_PROXIES = []
    assert client_ip(request("10.0.0.5", "198.51.100.7")) == "10.0.0.5"


def test_behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client(
    settings: Any,
) -> None:
    settings.IAMPORTAL_TRUSTED_PROXIES = [ip_network("10.0.0.0/8")]
    # The client wrote the first entry itself; the proxy appended the real peer.
    assert client_ip(request("10.0.0.5", "203.0.113.9, 198.51.100.7")) == "198.51.100.7"
    assert client_ip(request("10.0.0.5", "198.51.100.7, 10.0.0.9")) == "198.51.100.7"


def test_forwarded_headers_from_anyone_else_are_ignored(settings: Any) -> None:
    settings.IAMPORTAL_TRUSTED_PROXIES = [ip_network("10.0.0.0/8")]
    assert client_ip(request("192.0.2.1", "198.51.100.7")) == "192.0.2.1"


def test_a_malformed_chain_falls_back_to_the_peer(settings: Any) -> None:
    settings.IAMPORTAL_TRUSTED_PROXIES = [ip_network("10.0.0.0/8")]
    assert client_ip(request("10.0.0.5", "not-an-address")) == "10.0.0.5"
    assert client_ip(request("10.0.0.5")) == "10.0.0.5"
