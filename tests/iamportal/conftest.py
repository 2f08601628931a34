"""A real OpenID provider on loopback, and iamportal configured to use it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import oidc_provider_mock
import pytest

from iamportal.oidc import forget_provider_metadata
from tests.factories import OIDC_CLIENT_ID


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with oidc_provider_mock.run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def sso(settings: Any, provider: str, db: None) -> Iterator[None]:
    """Single sign-on at the `provider`, beside password sign-in."""
    settings.OIDC_RP_CLIENT_ID = OIDC_CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = "client-secret-for-tests"
    settings.OIDC_OP_DISCOVERY_URL = f"{provider}/.well-known/openid-configuration"
    settings.OIDC_GROUPS_CLAIM = "groups"
    settings.OIDC_REQUIRE_VERIFIED_EMAIL = True
    settings.IAMPORTAL_REVIEWER_GROUPS = ["security-reviewers"]
    settings.AUTHENTICATION_BACKENDS = [
        "iamportal.auth.LocalPasswordBackend",
        "iamportal.oidc.OidcBackend",
    ]
    forget_provider_metadata()
    yield
    forget_provider_metadata()
