"""Statements written once, for the few paths every credential request takes,
and for the rows a first sync inserts by the thousand.

Building a query through the ORM (resolving lookups, joins and columns, then
compiling) costs several times what PostgreSQL takes to answer it: on the
credential path the three ORM statements cost more CPU than everything else
iamportal does for the request. The statements here are composed once per
process from the models' own table and column names, quoted by the database
backend; every value is a parameter. Rows are turned into model instances with the
same converters the ORM applies, so a value reads the same (an aware datetime on
SQLite too) whichever way it was loaded.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import (
    NOT_PROVIDED,
    BigIntegerField,
    BooleanField,
    CharField,
    Field,
    IntegerField,
    Model,
    PositiveBigIntegerField,
    PositiveIntegerField,
    PositiveSmallIntegerField,
    SmallIntegerField,
    TextField,
)
from django.utils import timezone

M = TypeVar("M", bound=Model)
Converter = Callable[[Any], Any]


def quoted(name: str | None) -> str:
    if not name:
        raise ValueError("no column or table name to quote")
    return str(connection.ops.quote_name(name))


def table(model: type[Model]) -> str:
    """The model's table name, quoted."""
    return quoted(model._meta.db_table)


def column(model: type[Model], name: str) -> str:
    """The column of the model's field `name` (the primary key for "pk"), quoted."""
    field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    if not isinstance(field, Field):
        raise TypeError(f"{model.__name__}.{name} is not a column")
    return quoted(field.column)


def columns(alias: str, fields: Sequence[Field[Any, Any]]) -> str:
    """`alias."column", ...` for `fields`, in their order."""
    return ", ".join(f"{alias}.{quoted(field.column)}" for field in fields)


def concrete_fields(model: type[Model], names: Sequence[str] | None = None) -> list[Field]:
    """The model's concrete fields (all of them, or those named, with the primary
    key), in model order."""
    fields = list(model._meta.concrete_fields)
    if names is None:
        return fields
    wanted = set(names) | {model._meta.pk.name}
    return [field for field in fields if field.name in wanted or field.attname in wanted]


# Per connection (one per thread and database), since the converters are the
# connection's own methods (SQLite's reads the connection's time zone).
_CONVERTERS: weakref.WeakKeyDictionary[Any, dict[tuple[Field, ...], list[list[Converter]]]] = (
    weakref.WeakKeyDictionary()
)


def _converters(fields: Sequence[Field[Any, Any]]) -> list[list[Converter]]:
    """What the ORM's compiler applies to each column read through this thread's
    connection."""
    database = connections[DEFAULT_DB_ALIAS]
    known = _CONVERTERS.setdefault(database, {})
    key = tuple(fields)
    if key not in known:
        converters: list[list[Converter]] = []
        for field in fields:
            column = field.get_col(field.model._meta.db_table)
            functions = database.ops.get_db_converters(column) + column.get_db_converters(database)
            converters.append(
                [functools.partial(_apply, function, column, database) for function in functions]
            )
        known[key] = converters
    return known[key]


def _apply(function: Callable[..., Any], column: Any, database: Any, value: Any) -> Any:
    return function(value, column, database)


def instance(model: type[M], fields: Sequence[Field[Any, Any]], values: Sequence[Any]) -> M:
    """A model instance from a row holding `fields` in order, as the ORM would load
    it: fields not read are deferred (loaded on first use)."""
    converted = []
    for value, functions in zip(values, _converters(fields), strict=True):
        for function in functions:
            value = function(value)
        converted.append(value)
    return model.from_db(connection.alias, [field.attname for field in fields], converted)


@contextmanager
def cursor() -> Iterator[Any]:
    """A cursor for the statements written here. On PostgreSQL (unless
    DATABASE_PREPARED_STATEMENTS is off) its values are bound on the server and
    each statement is prepared once per connection, so the server neither parses
    nor plans it again: these statements run on every credential request, where
    that was a fifth of the time spent waiting for the database. Only these: the
    ORM's queries keep Django's client-side binding. Queries run through it are
    seen by Django's query log and execute wrappers as any other."""
    database = connections[DEFAULT_DB_ALIAS]
    if database.vendor != "postgresql" or not settings.DATABASE_PREPARED_STATEMENTS:
        with database.cursor() as plain:
            yield plain
        return
    # What Django's own cursor() does before it makes a cursor.
    database.close_if_health_check_failed()
    database.ensure_connection()
    database.validate_thread_sharing()
    with database.wrap_database_errors:
        raw = _prepared_cursor_class()(database.connection)
    wrapped = (
        _LoggedPrepared(raw, database) if database.queries_logged else CursorWrapper(raw, database)
    )
    with wrapped:
        yield wrapped


@functools.cache
def _prepared_cursor_class() -> type:
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparedCursor(ServerBindingCursor):
        def execute(self, query: Any, params: Any = None, **options: Any) -> Any:
            options["prepare"] = True
            return super().execute(query, params, **options)  # type: ignore[misc]

    return PreparedCursor


class _LoggedPrepared(CursorDebugWrapper):
    """Django's query log (DEBUG, tests) reads a statement's text back from the
    driver, which keeps none for a prepared one: log the statement with its values."""

    def execute(self, sql: Any, params: Any = None) -> Any:
        with self.debug_sql(self.db.ops.compose_sql(sql, params)):
            return CursorWrapper.execute(self, sql, params)


def insert(obj: Model) -> None:
    """INSERT `obj` (a new row; no signals, which no caller here has) and set its
    primary key, with each value prepared as the ORM prepares it for saving."""
    fields = _inserted_fields(type(obj))
    values = [field.get_db_prep_save(field.pre_save(obj, add=True), connection) for field in fields]
    sql = _insert_sql(type(obj))
    # As Model.save: a failed INSERT inside a transaction marks it for rollback.
    with transaction.mark_for_rollback_on_error(), cursor() as prepared:
        prepared.execute(sql, values)
        if connection.features.can_return_columns_from_insert:
            obj.pk = prepared.fetchone()[0]
        else:
            obj.pk = prepared.lastrowid
    obj._state.adding = False
    obj._state.db = connection.alias


@functools.cache
def _insert_sql(model: type[Model]) -> str:
    fields = _inserted_fields(model)
    names = ", ".join(quoted(field.column) for field in fields)
    slots = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {table(model)} ({names}) VALUES ({slots})"  # noqa: S608
    if connection.features.can_return_columns_from_insert:
        sql += f" RETURNING {column(model, 'pk')}"
    return sql


def insert_all(model: type[Model], objs: Sequence[Model] | Sequence[Mapping[str, Any]]) -> None:
    """INSERT `objs` (new rows of `model`; no signals) as `bulk_create` would, for
    the thousands of rows of a first sync, where `bulk_create` spends most of its
    time preparing every value of every row: each value is prepared as the ORM
    prepares it for saving, but a value every row shares (the account, the
    sync's time, a default) once, and plain text, numbers and flags not at all;
    and the rows are sent together (COPY on PostgreSQL, one prepared INSERT for
    all rows elsewhere). The new rows' primary keys are not set on `objs`.

    `objs` are model instances, or mappings of field names (or a foreign key's
    `<name>_id`) to values, where a field left out takes its default: a model
    instance per row costs more than preparing all its values."""
    if not objs:
        return
    # The connection itself: `connection` is a proxy that looks it up on every use.
    database = connections[DEFAULT_DB_ALIAS]
    columns: list[list[Any]] = []
    if isinstance(objs[0], Model):
        instances = cast(Sequence[Model], objs)
        for field in _inserted_fields(model):
            values = [field.pre_save(obj, add=True) for obj in instances]
            columns.append(_prepared(field, values, database))
    else:
        mappings = cast(Sequence[Mapping[str, Any]], objs)
        known = _field_names(model)
        for mapping in mappings:
            if not mapping.keys() <= known:
                unknown = ", ".join(sorted(mapping.keys() - known))
                raise TypeError(f"{model.__name__} has no field {unknown}")
        for field in _inserted_fields(model):
            columns.append(_prepared(field, _mapped(field, mappings), database))
    rows = zip(*columns, strict=True)
    with transaction.atomic(savepoint=False), database.cursor() as cursor:
        if database.vendor == "postgresql":
            # COPY: the rows stream in one operation. An INSERT per row, even
            # pipelined, took PostgreSQL several times as long.
            with database.wrap_database_errors, cursor.cursor.copy(_copy_sql(model)) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(_insert_all_sql(model), list(rows))


# Fields whose value, of exactly this Python type, the ORM saves as it is.
_PLAIN_FIELDS: dict[type[Field[Any, Any]], type] = {
    CharField: str,
    TextField: str,
    BooleanField: bool,
    IntegerField: int,
    BigIntegerField: int,
    SmallIntegerField: int,
    PositiveIntegerField: int,
    PositiveBigIntegerField: int,
    PositiveSmallIntegerField: int,
}


def _prepared(field: Field[Any, Any], values: list[Any], database: Any) -> list[Any]:
    """`values` of `field` as the ORM prepares them for saving."""
    first = values[0]
    if all(value is first for value in values):
        return [field.get_db_prep_save(first, database)] * len(values)
    plain = _PLAIN_FIELDS.get(type(field))
    if plain is not None and all(type(value) is plain for value in values):
        return values
    return [field.get_db_prep_save(value, database) for value in values]


_MISSING = object()


def _mapped(field: Field[Any, Any], mappings: Sequence[Mapping[str, Any]]) -> list[Any]:
    """`field`'s value in each mapping, by its name or column attribute, or its
    default where a mapping leaves it out."""
    default: Any = _MISSING
    values = []
    for mapping in mappings:
        value = mapping.get(field.attname, _MISSING)
        if value is _MISSING:
            value = mapping.get(field.name, _MISSING)
            if isinstance(value, Model):  # a foreign key given as its object
                value = value.pk
        if value is _MISSING:
            if default is _MISSING:
                default = _default(field)
            value = default
        values.append(value)
    return values


def _default(field: Field[Any, Any]) -> Any:
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return timezone.now()
    return field.get_default()


@functools.cache
def _field_names(model: type[Model]) -> frozenset[str]:
    fields = model._meta.concrete_fields
    return frozenset({field.name for field in fields} | {field.attname for field in fields})


@functools.cache
def _inserted_fields(model: type[Model]) -> tuple[Field[Any, Any], ...]:
    fields = [
        field
        for field in model._meta.concrete_fields
        if not field.primary_key and not field.generated
    ]
    if any(field.db_default is not NOT_PROVIDED for field in fields):
        # The ORM leaves such a column out of the INSERT; these statements do not.
        raise TypeError(f"{model.__name__} has a database default: save it through the ORM")
    return tuple(fields)


@functools.cache
def _insert_all_sql(model: type[Model]) -> str:
    fields = _inserted_fields(model)
    names = ", ".join(quoted(field.column) for field in fields)
    slots = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {table(model)} ({names}) VALUES ({slots})"  # noqa: S608


@functools.cache
def _copy_sql(model: type[Model]) -> str:
    names = ", ".join(quoted(field.column) for field in _inserted_fields(model))
    return f"COPY {table(model)} ({names}) FROM STDIN"
