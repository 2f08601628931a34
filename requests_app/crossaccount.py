"""The other half of a cross-account grant now lives in
`requests_app/changes/crossaccount.py`; import it from `requests_app.changes`.
This name stays until the last caller has moved."""

from __future__ import annotations

from requests_app.changes.crossaccount import cross_account_changes, statement_sid

__all__ = ["cross_account_changes", "statement_sid"]
