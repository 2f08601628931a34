"""Secrets never reach a log line. iamportal itself logs none; this filter is for
what logs request lines and URLs on its behalf (django.server under runserver,
django.request for 4xx/5xx answers, HTTP client libraries), where a token
travels in an address: the Weep challenge token in its path, the console
sign-in token and single sign-on codes in query strings."""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"

# Query-string and form parameters that carry a secret.
_PARAMETERS = re.compile(
    r"(?i)(?<![\w-])(Session|SigninToken|token|code|state|id_token|access_token|"
    r"refresh_token|nonce|code_verifier|encoded_jwt|csrfmiddlewaretoken|password)=[^&\s\"'<>]+"
)
# Path segments that are a secret: the Weep challenge token.
_PATHS = re.compile(r"(/(?:challenge_poller|challenge_validator)/)[^/?#\s\"']+")
# Secret fields in JSON, Python reprs and AWS's XML answers.
_FIELDS = re.compile(
    r"(?i)([\"']?(?:SecretAccessKey|SessionToken|secret_access_key|session_token|"
    r"sessionKey|SigninToken|encoded_jwt|X-Amz-Security-Token)[\"']?\s*[:=]\s*b?[\"']?)"
    r"[^\"'\s,}&<]+"
)
_XML = re.compile(r"(<(SecretAccessKey|SessionToken)>)[^<]*(</\2>)")
# A request signature, which is part of a presigned URL (an RDS IAM authentication
# token): botocore logs it at DEBUG on its own line, and in a query string.
_SIGNATURES = re.compile(r"(?i)((?:^|\b)Signature:\s*|X-Amz-Signature=)[0-9a-f]{64}")


def redact(text: str) -> str:
    text = _PARAMETERS.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    text = _PATHS.sub(rf"\1{REDACTED}", text)
    text = _FIELDS.sub(rf"\1{REDACTED}", text)
    text = _SIGNATURES.sub(rf"\1{REDACTED}", text)
    return _XML.sub(rf"\1{REDACTED}\3", text)


class RedactSecrets(logging.Filter):
    """Replaces each secret in a record's message with [redacted]; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
