"""JSON from outside, parsed with bounds: every JSON body and JSON form field goes
through here, so a deeply nested document is a clear 400 everywhere instead of
a RecursionError (a 500) in whichever parser met it first."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

# IAM policies nest a handful of levels and no API body of iamportal nests
# deeper; anything more is only a way to make the parser (and anything printing
# it) work hard.
JSON_MAX_DEPTH = 32
# A policy IAM accepts is at most 10,240 characters; a body ten times that
# holds any honest request with room to spare.
BODY_MAX_BYTES = 100_000


def json_nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in `text` (brackets inside strings do
    not count). Linear and recursion-free, so it is safe on any input."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def json_load_bounded(text: str | bytes, *, max_depth: int = JSON_MAX_DEPTH) -> Any:
    """The JSON value in `text`; ValueError with a readable message otherwise."""
    if isinstance(text, bytes):
        try:
            text = text.decode(json.detect_encoding(text))
        except UnicodeDecodeError as exc:
            raise ValueError("This is not valid JSON: it is not UTF-8 text.") from exc
    if json_nesting_depth(text) > max_depth:
        raise ValueError(f"The JSON is nested more than {max_depth} levels deep.")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"This is not valid JSON: {exc}") from exc


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = f"The request body is larger than {BODY_MAX_BYTES:,} bytes."
    default_code = "payload_too_large"


class BoundedJSONParser(JSONParser):
    """JSON bodies of bounded size and depth (the REST API's default parser): a
    deeply nested body would make the parser recurse until it fails, which must
    be a 400, not a 500."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        raw = stream.read(BODY_MAX_BYTES + 1) if stream is not None else b""
        if len(raw) > BODY_MAX_BYTES:
            raise PayloadTooLarge()
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"The body is not {encoding} text.") from exc
        try:
            return json_load_bounded(text)
        except ValueError as exc:
            raise ParseError(f"JSON parse error: {exc}") from exc
