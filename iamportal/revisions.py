"""Cross-process cache invalidation: a named counter in the database."""

from django.db.models import F

from iamportal.models import Revision


def revision_bump(name: str) -> None:
    updated = Revision.objects.filter(name=name).update(value=F("value") + 1)
    if not updated:
        Revision.objects.get_or_create(name=name, defaults={"value": 1})


def revision_get(name: str) -> int:
    value = Revision.objects.filter(name=name).values_list("value", flat=True).first()
    return int(value or 0)
