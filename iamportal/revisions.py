"""Cross-process cache invalidation: a named counter in the database."""

from django.db.models import F

from iamportal.models import Revision

# Bumps made by this process, so its own caches notice them at once.
_local_bumps: dict[str, int] = {}


def revision_bump(name: str) -> None:
    updated = Revision.objects.filter(name=name).update(value=F("value") + 1)
    if not updated:
        Revision.objects.get_or_create(name=name, defaults={"value": 1})
    _local_bumps[name] = _local_bumps.get(name, 0) + 1


def local_bumps(name: str) -> int:
    """How often this process bumped `name`: a cache built before the last
    local bump is stale without asking the database."""
    return _local_bumps.get(name, 0)


def revision_get(name: str) -> int:
    value = Revision.objects.filter(name=name).values_list("value", flat=True).first()
    return int(value or 0)
