"""A stand-in for AWS Config's aggregator API, answering at the HTTP edge.

moto, the embedded AWS, keeps Config aggregators but answers their aggregate
queries only for S3 buckets, SNS topics and IAM roles and policies of the
aggregator's own account, without tags and without
`SelectAggregateResourceConfig` or `GetAggregateDiscoveredResourceCounts`. This
stand-in answers those four operations from configuration items it is given, as
AWS does on the wire (JSON bodies that botocore parses), so the code under test
runs unchanged. It is hooked into botocore's `before-call` event of the hub's
clients: the demo (with its embedded AWS only), the tests and the sync
benchmark use it; nothing else does.

A configuration item here is a dict: resourceType, resourceId, resourceName,
arn, awsRegion, accountId, configurationItemCaptureTime (an aware datetime),
configuration (a dict), supplementaryConfiguration (a dict of dicts), tags (a
dict).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.parsers import create_parser

Item = dict[str, Any]
PAGE_LIMIT = 100
_PARSER = create_parser("json")
# The one query shape the sync sends: fields, then one account.
_SELECT = re.compile(
    r"^SELECT\s+(?P<fields>[\w\s,]+?)\s+WHERE\s+accountId\s*=\s*'(?P<account>\d{12})'$"
)


class _Raw:
    """What botocore reads a response body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


class _Refused(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class ConfigAggregatorStandIn:
    """One aggregator, `name`, whose items come from `items_for(account_id)`.

    `select_unsupported`: resource types advanced queries do not cover (AWS has
    such types: they are listed and read, but never selected). `refused`: account
    id -> error code every query about that account gets. `calls` counts the
    operations answered."""

    def __init__(self, name: str, items: dict[str, list[Item]] | None = None) -> None:
        self.name = name
        self.items = items if items is not None else {}
        self.select_unsupported: set[str] = set()
        self.refused: dict[str, str] = {}
        self.unprocessed: set[str] = set()
        self.calls: dict[str, int] = {}

    def items_for(self, account_id: str) -> list[Item]:
        return self.items.get(account_id, [])

    # --- the edge -----------------------------------------------------------------

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> Any:
        """botocore's `before-call` event: the request is serialized; answering
        here skips the network (and any in-process mock behind it)."""
        handler = getattr(self, f"_op_{model.name}", None)
        if handler is None:
            return None  # everything else goes on to the embedded AWS
        self.calls[model.name] = self.calls.get(model.name, 0) + 1
        body = json.loads(params.get("body") or b"{}")
        try:
            if body.get("ConfigurationAggregatorName") != self.name:
                raise _Refused(
                    "NoSuchConfigurationAggregatorException",
                    f"The configuration aggregator {body.get('ConfigurationAggregatorName')} "
                    "does not exist.",
                )
            status, payload = 200, handler(body)
        except _Refused as refused:
            status, payload = refused.status, {"__type": refused.code, "message": refused.message}
        return self._response(model, params, status, payload)

    @staticmethod
    def _response(
        model: Any, params: dict[str, Any], status: int, payload: dict[str, Any]
    ) -> tuple[AWSResponse, dict[str, Any]]:
        """The wire answer, parsed by botocore's own parser, as a real one would be."""
        body = json.dumps(payload, default=_wire).encode()
        headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "stand-in"}
        http = AWSResponse(params.get("url", ""), status, headers, _Raw(body))
        parsed = _PARSER.parse(
            {"status_code": status, "headers": http.headers, "body": body}, model.output_shape
        )
        return http, parsed

    def _account(self, account_id: str | None) -> list[Item]:
        if not account_id:
            raise _Refused("ValidationException", "The stand-in answers per account only.")
        if account_id in self.refused:
            code = self.refused[account_id]
            raise _Refused(
                code, f"{code} for account {account_id}", 403 if "Denied" in code else 400
            )
        return self.items_for(account_id)

    @staticmethod
    def _page(body: dict[str, Any], found: list[Any]) -> tuple[list[Any], str | None]:
        limit = int(body.get("Limit") or PAGE_LIMIT)
        if limit > PAGE_LIMIT:
            raise _Refused("InvalidLimitException", f"Limit {limit} exceeds {PAGE_LIMIT}.")
        start = int(body.get("NextToken") or 0)
        end = start + limit
        return found[start:end], (str(end) if end < len(found) else None)

    # --- the operations -------------------------------------------------------------

    def _op_GetAggregateDiscoveredResourceCounts(self, body: dict[str, Any]) -> dict[str, Any]:
        filters = body.get("Filters") or {}
        items = self._account(filters.get("AccountId"))
        counts: dict[str, int] = {}
        for item in items:
            counts[item["resourceType"]] = counts.get(item["resourceType"], 0) + 1
        grouped = [{"GroupName": t, "ResourceCount": n} for t, n in sorted(counts.items())]
        page, token = self._page(body, grouped)
        answer: dict[str, Any] = {
            "TotalDiscoveredResources": len(items),
            "GroupByKey": "RESOURCE_TYPE",
            "GroupedResourceCounts": page,
        }
        if token:
            answer["NextToken"] = token
        return answer

    def _op_SelectAggregateResourceConfig(self, body: dict[str, Any]) -> dict[str, Any]:
        match = _SELECT.match(" ".join(str(body.get("Expression", "")).split()))
        if match is None:
            raise _Refused("InvalidExpressionException", "The stand-in knows one query shape.")
        fields = [f.strip() for f in match["fields"].split(",")]
        items = [
            i
            for i in self._account(match["account"])
            if i["resourceType"] not in self.select_unsupported
        ]
        page, token = self._page(body, items)
        results = [
            json.dumps({f: _selected(item, f) for f in fields}, default=_wire) for item in page
        ]
        answer: dict[str, Any] = {
            "Results": results,
            "QueryInfo": {"SelectFields": [{"Name": f} for f in fields]},
        }
        if token:
            answer["NextToken"] = token
        return answer

    def _op_ListAggregateDiscoveredResources(self, body: dict[str, Any]) -> dict[str, Any]:
        filters = body.get("Filters") or {}
        items = [
            i
            for i in self._account(filters.get("AccountId"))
            if i["resourceType"] == body.get("ResourceType")
        ]
        page, token = self._page(body, items)
        answer: dict[str, Any] = {
            "ResourceIdentifiers": [
                {
                    "SourceAccountId": i["accountId"],
                    "SourceRegion": i["awsRegion"],
                    "ResourceId": i["resourceId"],
                    "ResourceType": i["resourceType"],
                    "ResourceName": i.get("resourceName") or i["resourceId"],
                }
                for i in page
            ]
        }
        if token:
            answer["NextToken"] = token
        return answer

    def _op_BatchGetAggregateResourceConfig(self, body: dict[str, Any]) -> dict[str, Any]:
        wanted = body.get("ResourceIdentifiers") or []
        if len(wanted) > PAGE_LIMIT:
            raise _Refused("ValidationException", "At most 100 resource identifiers.")
        found, missing = [], []
        by_account: dict[str, dict[tuple[str, str, str], Item]] = {}
        for key in wanted:
            account_id = key["SourceAccountId"]
            if account_id not in by_account:
                by_account[account_id] = {
                    (i["resourceType"], i["resourceId"], i["awsRegion"]): i
                    for i in self._account(account_id)
                }
            item = by_account[account_id].get(
                (key["ResourceType"], key["ResourceId"], key["SourceRegion"])
            )
            if item is None or item["resourceId"] in self.unprocessed:
                missing.append(key)
                continue
            found.append(_base_item(item))
        return {"BaseConfigurationItems": found, "UnprocessedResourceIdentifiers": missing}


def _wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _selected(item: Item, field: str) -> Any:
    if field == "tags":
        return [
            {"key": k, "value": v, "tag": f"{k}={v}"}
            for k, v in sorted(item.get("tags", {}).items())
        ]
    if field == "configurationItemCaptureTime":
        # Advanced queries answer times as ISO 8601 text.
        return item[field].strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return item.get(field)


def _base_item(item: Item) -> dict[str, Any]:
    return {
        "version": "1.3",
        "accountId": item["accountId"],
        "configurationItemCaptureTime": item["configurationItemCaptureTime"],
        "configurationItemStatus": "OK",
        "configurationStateId": str(int(item["configurationItemCaptureTime"].timestamp() * 1000)),
        "arn": item.get("arn") or "",
        "resourceType": item["resourceType"],
        "resourceId": item["resourceId"],
        "resourceName": item.get("resourceName") or "",
        "awsRegion": item["awsRegion"],
        "configuration": json.dumps(item.get("configuration") or {}),
        "supplementaryConfiguration": {
            key: json.dumps(value)
            for key, value in (item.get("supplementaryConfiguration") or {}).items()
        },
    }
