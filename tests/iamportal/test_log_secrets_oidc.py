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

from tests.factories import (
    Served,
    back_at_iamportal,
    dana_at_provider,
    sign_in_at_provider,
    start_sign_in,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sso")]


@pytest.mark.parametrize(
    "log_output", [False, True], ids=["as-configured", "libraries-at-debug"], indirect=True
)
def test_single_sign_on_leaves_no_secret_in_the_log(
    settings: Any, provider: str, log_output: StringIO
) -> None:
    # The browser (httpx) and the provider (a mock on loopback) are not iamportal.
    outside = ("httpx", "httpcore", "oidc_provider_mock", "authlib", "werkzeug")
    levels = {name: logging.getLogger(name).level for name in outside}
    for name in outside:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        dana_at_provider(provider, "team-payments")
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
    text = log_output.getvalue()
    assert "/oidc/callback/?" in text
    assert {name for name, value in secrets.items() if value in text} == set(), text
