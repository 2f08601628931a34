"""Serializer fields that take JSON values as they are: DRF would otherwise turn a
number into a string or "yes" into true, and scripts would never learn that
they sent the wrong type."""

from __future__ import annotations

from typing import Any, cast

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A JSON string, and nothing DRF would turn into one (a number, a boolean)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return cast(str, super().to_internal_value(data))


class StrictBooleanField(serializers.BooleanField):
    """true or false, not "yes", 1 or "on"."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, not a string of digits or 3.0."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return cast(int, super().to_internal_value(data))
