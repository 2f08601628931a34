"""Business actions on permission requests, one module per stage:

- `submit`: a request (or a dry run) from the wizard or the API;
- `access`: access requests (using a role for a while), revoking or giving up their grants;
- `review`: approve, reject, cancel, comment, edit, retry;
- `apply`: making an approved request's changes in AWS;
- `expiry`: temporary access, extended or taken away;
- `approval`: approval policies, the requirement stored on a request, automatic approval;
- `restore`: a request that puts back a recorded version of a part of a role;
- `lifecycle`: requests that create, copy, delete or re-describe a role;
- `recovery`: the sweep that hands lost or abandoned work to the broker again;
- `leases`, `common`: what those share.

Callers use this package (`services.policy_request_approve(...)`); every public
name is re-exported here."""

from __future__ import annotations

from requests_app.policy.limits import compact_size, inline_policies_size
from requests_app.policy.lint_rules import BLOCKING_LINT_CODES
from requests_app.services.access import (
    ACCESS_DURATIONS,
    access_end_errors,
    access_grant_revoke,
    access_max_duration,
    access_request_pending,
    access_request_submit,
)
from requests_app.services.apply import APPLICABLE, policy_request_apply
from requests_app.services.approval import (
    ACCESS_CHANGE_TYPE,
    RequestFacts,
    approval_groups_refusal,
    approval_policy_delete,
    approval_policy_reasons,
    approval_policy_save,
    approval_requirement_for,
    approvals_counted,
    policy_request_approve_automatically,
    request_facts,
)
from requests_app.services.common import (
    OPEN_STATUSES,
    REASON_MAX_LENGTH,
    RequestActionForbidden,
    RequestActionRefused,
    RequestInvalid,
)
from requests_app.services.expiry import (
    EXPIRABLE,
    policy_request_expire,
    policy_request_extend,
    policy_requests_due_to_expire,
)
from requests_app.services.leases import WorkLeaseLost
from requests_app.services.lifecycle import (
    CLONE_PARTS,
    TRUST_PRESETS,
    access_tags_for,
    new_role_arn,
    role_clone_payload,
    role_clone_submit,
    role_create_findings,
    role_create_submit,
    role_delete_submit,
    role_update_submit,
    trust_preset_document,
)
from requests_app.services.recovery import requests_work_recover
from requests_app.services.restore import (
    change_role_part,
    role_part_changes,
    role_version_restore_changes,
    role_version_restore_submit,
)
from requests_app.services.review import (
    COMMENT_MAX_LENGTH,
    REVISION_MAX_LENGTH,
    REVISION_MISSING_MESSAGE,
    REVISION_STALE_MESSAGE,
    FindingsNotAcknowledged,
    RequestRevisionStale,
    change_edit,
    policy_request_approve,
    policy_request_cancel,
    policy_request_comment,
    policy_request_reject,
    policy_request_retry,
)
from requests_app.services.submit import (
    JUSTIFICATION_MAX_LENGTH,
    MAX_CHANGES,
    MAX_EXPIRY,
    PolicyToolsRateLimited,
    RequestPreview,
    changes_findings,
    changes_validate,
    default_policy_name,
    policy_request_changes_submit,
    policy_request_preview,
    policy_request_submit,
    policy_tools_rate_check,
)

__all__ = [
    "ACCESS_CHANGE_TYPE",
    "ACCESS_DURATIONS",
    "APPLICABLE",
    "BLOCKING_LINT_CODES",
    "CLONE_PARTS",
    "COMMENT_MAX_LENGTH",
    "EXPIRABLE",
    "JUSTIFICATION_MAX_LENGTH",
    "MAX_CHANGES",
    "MAX_EXPIRY",
    "OPEN_STATUSES",
    "REASON_MAX_LENGTH",
    "REVISION_MAX_LENGTH",
    "REVISION_MISSING_MESSAGE",
    "REVISION_STALE_MESSAGE",
    "TRUST_PRESETS",
    "FindingsNotAcknowledged",
    "PolicyToolsRateLimited",
    "RequestActionForbidden",
    "RequestActionRefused",
    "RequestFacts",
    "RequestInvalid",
    "RequestPreview",
    "RequestRevisionStale",
    "WorkLeaseLost",
    "access_end_errors",
    "access_grant_revoke",
    "access_max_duration",
    "access_request_pending",
    "access_request_submit",
    "access_tags_for",
    "approval_groups_refusal",
    "approval_policy_delete",
    "approval_policy_reasons",
    "approval_policy_save",
    "approval_requirement_for",
    "approvals_counted",
    "change_edit",
    "change_role_part",
    "changes_findings",
    "changes_validate",
    "compact_size",
    "default_policy_name",
    "inline_policies_size",
    "new_role_arn",
    "policy_request_apply",
    "policy_request_approve",
    "policy_request_approve_automatically",
    "policy_request_cancel",
    "policy_request_changes_submit",
    "policy_request_comment",
    "policy_request_expire",
    "policy_request_extend",
    "policy_request_preview",
    "policy_request_reject",
    "policy_request_retry",
    "policy_request_submit",
    "policy_requests_due_to_expire",
    "policy_tools_rate_check",
    "request_facts",
    "requests_work_recover",
    "role_clone_payload",
    "role_clone_submit",
    "role_create_findings",
    "role_create_submit",
    "role_delete_submit",
    "role_part_changes",
    "role_update_submit",
    "role_version_restore_changes",
    "role_version_restore_submit",
    "trust_preset_document",
]
