"""The client's address and whether it used HTTPS, behind trusted proxies or not."""

from __future__ import annotations

import os
import subprocess
import sys
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, RequestFactory

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


# --- SECURE_PROXY_SSL_HEADER ------------------------------------------------------------


@pytest.fixture
def behind_tls_proxy(settings: Any) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.IAMPORTAL_TRUSTED_PROXIES = [ip_network("10.0.0.0/8")]


@pytest.mark.usefixtures("behind_tls_proxy")
def test_forwarded_proto_from_a_trusted_proxy_makes_the_request_secure() -> None:
    response = Client(REMOTE_ADDR="10.0.0.5").get("/login/", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200


@pytest.mark.usefixtures("behind_tls_proxy")
def test_forwarded_proto_from_anyone_else_is_ignored() -> None:
    response = Client(REMOTE_ADDR="192.0.2.1").get("/login/", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/login/"


def test_the_forwarded_proto_header_needs_trusted_proxies_to_start() -> None:
    env = {k: v for k, v in os.environ.items() if k != "IAMPORTAL_TRUSTED_PROXIES"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=Path(__file__).resolve().parents[2],
        env={**env, "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "IAMPORTAL_TRUSTED_PROXIES must list the proxy networks" in result.stderr
