"""Single sign-on leaves no code, state or session key in the log (the other
flows: tests/brokering/test_log_secrets.py)."""

from __future__ import annotations

import logging
import logging.config
from io import StringIO
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from tests.brokering.test_log_secrets import Served, configure
from tests.iamportal.test_oidc import (  # noqa: F401  (provider and sso are fixtures)
    back_at_iamportal,
    dana_at_provider,
    provider,
    sign_in_at_provider,
    sso,
    start_sign_in,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("everything", [False, True], ids=["as-configured", "libraries-at-debug"])
def test_single_sign_on_leaves_no_secret_in_the_log(
    settings: Any,
    request: pytest.FixtureRequest,
    everything: bool,
) -> None:
    settings.DEBUG = True
    output: StringIO = configure(settings, everything=everything)
    # The browser (httpx) and the provider (a mock on loopback) are not iamportal.
    outside = ("httpx", "httpcore", "oidc_provider_mock", "authlib", "werkzeug")
    levels = {name: logging.getLogger(name).level for name in outside}
    for name in outside:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        dana_at_provider(request.getfixturevalue("provider"), "team-payments")
        browser: Client = Served()
        authorization = start_sign_in(browser)
        callback = sign_in_at_provider(authorization, sub="dana")
        query = parse_qs(urlsplit(callback).query)
        response = back_at_iamportal(browser, callback)
        assert response.status_code == 302
        secrets = {
            "code": query["code"][0],
            "state": query["state"][0],
            "nonce": parse_qs(urlsplit(authorization).query)["nonce"][0],
            "session key": browser.cookies["sessionid"].value,
        }
    finally:
        logging.config.dictConfig(settings.LOGGING)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    text = output.getvalue()
    assert "/oidc/callback/?" in text
    assert {name for name, value in secrets.items() if value in text} == set(), text
