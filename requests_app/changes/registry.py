"""Every change type iamportal knows, one `ChangeType` each, by `Change.Type`."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from requests_app.changes.access import ROLE_ACCESS_GRANT
from requests_app.changes.attachment import MANAGED_POLICY_ATTACH, MANAGED_POLICY_DETACH
from requests_app.changes.base import ChangeRefused, ChangeType
from requests_app.changes.boundary import PERMISSIONS_BOUNDARY_DELETE, PERMISSIONS_BOUNDARY_PUT
from requests_app.changes.inline import INLINE_POLICY_DELETE, INLINE_POLICY_PUT
from requests_app.changes.lifecycle import ROLE_CREATE, ROLE_DELETE, ROLE_UPDATE
from requests_app.changes.managed import MANAGED_POLICY_CREATE, MANAGED_POLICY_VERSION
from requests_app.changes.resource import RESOURCE_POLICY_PUT
from requests_app.changes.tags import TAGS_DELETE, TAGS_PUT
from requests_app.changes.trust import TRUST_POLICY_UPDATE

CHANGE_TYPES: Mapping[str, ChangeType] = MappingProxyType(
    {
        kind.type: kind
        for kind in (
            INLINE_POLICY_PUT,
            INLINE_POLICY_DELETE,
            MANAGED_POLICY_ATTACH,
            MANAGED_POLICY_DETACH,
            TRUST_POLICY_UPDATE,
            TAGS_PUT,
            TAGS_DELETE,
            PERMISSIONS_BOUNDARY_PUT,
            PERMISSIONS_BOUNDARY_DELETE,
            MANAGED_POLICY_CREATE,
            MANAGED_POLICY_VERSION,
            RESOURCE_POLICY_PUT,
            ROLE_CREATE,
            ROLE_DELETE,
            ROLE_UPDATE,
            ROLE_ACCESS_GRANT,
        )
    }
)


def change_type(type: str) -> ChangeType:
    """The change type named `type`. Raises ChangeRefused for a type iamportal
    does not know (a row written by a newer or older version)."""
    kind = CHANGE_TYPES.get(type)
    if kind is None:
        raise ChangeRefused(f"iamportal does not know changes of type {type!r}.")
    return kind
