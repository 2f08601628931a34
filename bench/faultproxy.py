"""A fault-injecting HTTP proxy in front of the embedded AWS (moto's server).

Every request is attributed to an account: a spoke's calls by the access key
its AssumeRole answer handed out (the proxy reads those answers as they pass),
an AssumeRole call by the account of the role it assumes, anything else to the
hub. Per account it can answer with throttling in the service's own error
shape, with a 500 or 503, reset the connection without an answer, or hold
every call for a while before passing it on (a slow or hung endpoint). It
counts the calls it forwards, by account, action and target, so a benchmark
can tell how often a change was written.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import socket
import struct
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

HUB = "hub"
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/[^/]+/([^/]+)/aws4_request")
_ROLE_ARN = re.compile(r"arn:aws:iam::(\d{12}):role/")
_ACCESS_KEY = re.compile(r"<AccessKeyId>([^<]+)</AccessKeyId>")
_QUERY_NAMESPACES = {
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
    "sns": "http://sns.amazonaws.com/doc/2010-03-31/",
    "sqs": "http://queue.amazonaws.com/doc/2012-11-05/",
}


@dataclass
class Faults:
    """What to do to one account's calls: the chances (0 to 1) that a call is
    throttled, answered with a 5xx or has its connection reset, and seconds
    every call is held before it is answered."""

    throttle: float = 0.0
    server_error: float = 0.0
    reset: float = 0.0
    delay: float = 0.0

    def describe(self) -> str:
        parts = [
            f"{label} {value:.0%}"
            for label, value in (
                ("throttled", self.throttle),
                ("5xx", self.server_error),
                ("reset", self.reset),
            )
            if value
        ]
        if self.delay:
            parts.append(f"held {self.delay:g} s")
        return ", ".join(parts) or "none"


@dataclass(frozen=True)
class Call:
    account: str
    service: str
    action: str
    target: str


class FaultProxy:
    """The proxy: `start()` listens on a free loopback port (`url`), `stop()` ends it."""

    def __init__(self, upstream_port: int, *, seed: int = 1) -> None:
        self.upstream_port = upstream_port
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._faults: dict[str, Faults] = {}
        self._keys: dict[str, str] = {}
        # Calls passed on to the embedded AWS that it answered with a 2xx.
        self.forwarded: Counter[Call] = Counter()
        self.injected: Counter[str] = Counter()
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def set_faults(self, account_id: str, faults: Faults) -> None:
        with self._lock:
            self._faults[account_id] = faults

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset_counts(self) -> None:
        with self._lock:
            self.forwarded.clear()
            self.injected.clear()

    def count(self, *, action: str, account: str | None = None) -> int:
        with self._lock:
            return sum(
                n
                for call, n in self.forwarded.items()
                if call.action == action and (account is None or call.account == account)
            )

    def calls(self, action: str) -> dict[Call, int]:
        with self._lock:
            return {call: n for call, n in self.forwarded.items() if call.action == action}

    # --- used by the handler ---

    def account_of(self, access_key: str, body: bytes, action: str) -> str:
        if action == "AssumeRole":
            found = _ROLE_ARN.search(_form(body).get("RoleArn", ""))
            if found:
                return found.group(1)
        with self._lock:
            return self._keys.get(access_key, HUB)

    def decide(self, account: str) -> tuple[str, float]:
        """('throttle' | 'error' | 'reset' | '', seconds to hold the call)."""
        with self._lock:
            faults = self._faults.get(account)
            if faults is None:
                return "", 0.0
            roll = self._random.random()
        outcome = ""
        for name, chance in (
            ("throttle", faults.throttle),
            ("error", faults.server_error),
            ("reset", faults.reset),
        ):
            if roll < chance:
                outcome = name
                break
            roll -= chance
        if outcome:
            with self._lock:
                self.injected[outcome] += 1
        return outcome, faults.delay

    def server_error(self) -> tuple[str, int, str]:
        """A 500 or a 503, half and half."""
        with self._lock:
            coin = self._random.random()
        if coin < 0.5:
            return "InternalFailure", 500, "We encountered an internal error. Please try again."
        return "ServiceUnavailable", 503, "Service is unavailable. Please try again."

    def record(self, call: Call, status: int, answer: bytes) -> None:
        with self._lock:
            if 200 <= status < 300:
                self.forwarded[call] += 1
            if call.action == "AssumeRole" and status == 200:
                found = _ACCESS_KEY.search(answer.decode("utf-8", "replace"))
                if found:
                    self._keys[found.group(1)] = call.account


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that drop their connection (after a read timeout) are expected."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def _form(body: bytes) -> dict[str, str]:
    try:
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    except ValueError:
        return {}


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the benchmark prints its own figures."""

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        found = _CREDENTIAL.search(self.headers.get("Authorization", ""))
        access_key, service = found.groups() if found else ("", "s3")
        call = self._describe(service, access_key, body)
        outcome, delay = self.owner.decide(call.account)
        if delay:
            time.sleep(delay)
        try:
            if outcome == "reset":
                self._reset()
            elif outcome:
                self._fail(service, throttle=outcome == "throttle")
            else:
                self._forward(call, body)
        except OSError:
            # The client gave up (its read timeout) while the call was held.
            self.close_connection = True

    def _describe(self, service: str, access_key: str, body: bytes) -> Call:
        target = self.headers.get("X-Amz-Target", "")
        form: dict[str, str] = {}
        if target:  # the JSON protocol (SQS)
            action = target.rsplit(".", 1)[-1]
        elif service == "s3":
            action = f"{self.command} {self.path.split('?', 1)[0]}"
        else:
            form = _form(body)
            action = form.get("Action", "")
        account = self.owner.account_of(access_key, body, action)
        what = "/".join(
            form.get(k, "") for k in ("RoleName", "PolicyName", "PolicyArn") if k in form
        )
        return Call(account=account, service=service, action=action, target=what)

    def _forward(self, call: Call, body: bytes) -> None:
        upstream = http.client.HTTPConnection("127.0.0.1", self.owner.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            answer = response.read()
            status = response.status
            reply_headers = response.getheaders()
        finally:
            upstream.close()
        self.owner.record(call, status, answer)
        self.send_response(status)
        for key, value in reply_headers:
            if key.lower() not in ("content-length", "transfer-encoding", "connection", "server"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer)

    def _reset(self) -> None:
        # A linger of zero makes the close send a reset instead of a clean end.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _fail(self, service: str, *, throttle: bool) -> None:
        """The answer the service gives when it throttles or fails."""
        request_id = str(uuid.uuid4())
        headers = {"x-amzn-RequestId": request_id}
        if throttle:
            code, status, message = "Throttling", 400, "Rate exceeded"
        else:
            code, status, message = self.owner.server_error()
        if service == "s3":
            code = "SlowDown" if throttle else ("InternalError" if status == 500 else code)
            status = 503 if throttle else status
            message = "Please reduce your request rate." if throttle else message
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{code}</Code><Message>{message}</Message>"
                f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"
            ).encode()
            content_type = "application/xml"
        elif self.headers.get("X-Amz-Target"):  # SQS's JSON protocol
            code = "RequestThrottled" if throttle else code
            body = json.dumps({"__type": f"com.amazonaws.sqs#{code}", "message": message}).encode()
            headers["x-amzn-query-error"] = f"{code};{'Sender' if throttle else 'Receiver'}"
            content_type = "application/x-amz-json-1.0"
        else:
            code = "RequestThrottled" if throttle and service == "sqs" else code
            namespace = _QUERY_NAMESPACES.get(service, _QUERY_NAMESPACES["iam"])
            body = (
                f'<ErrorResponse xmlns="{namespace}"><Error>'
                f"<Type>{'Sender' if throttle else 'Receiver'}</Type><Code>{code}</Code>"
                f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
                "</ErrorResponse>"
            ).encode()
            content_type = "text/xml"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
