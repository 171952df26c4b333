"""Reads that run before every turn, compiled to SQL once per process.

Django builds and compiles a queryset each time it runs it: 0.3 to 1 ms of CPU for each of the
reads a turn makes before its request can leave, against ~20 µs for the database to answer
these indexed reads (docs/architecture.md, "The reads before a turn are compiled once"). A
:class:`PreparedRead` is written as an ORM queryset like every other read. The first time it
runs on a database it is compiled with marker values where its arguments go; later calls run
that SQL with their own arguments, and build rows or model instances as Django would.

Arguments are ints, strs or datetimes compared with the model's columns: Django passes ints and
strs to the database as they are on every backend, and a datetime as the backend adapts it, so
a marker's place among the compiled parameters is its argument's place. An int no database
column can hold matches no row, as with Django's own lookups."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators

# Values no query of this app uses as a constant: where a marker appears, an argument goes.
# The int one fits every backend's 32-bit id column (Django compiles a lookup with a value out
# of its column's range to "no rows", with no parameter).
_INT_MARKER = 2_034_567_000
_STR_MARKER = "\x00prepared-argument-"
_BIGGEST_INT = 2**63 - 1


_DATETIME_MARKER = dt.datetime(1901, 2, 3, 4, 5, 6, 700_000, tzinfo=dt.UTC)
_KINDS = (int, str, dt.datetime)
Argument = int | str | dt.datetime


def _marker(kind: type, index: int) -> Argument:
    if kind is int:
        return _INT_MARKER + index
    if kind is str:
        return f"{_STR_MARKER}{index}"
    if kind is dt.datetime:
        return _DATETIME_MARKER + dt.timedelta(microseconds=index)
    raise TypeError(f"a prepared read takes int, str or datetime arguments, not {kind.__name__}")


def _adapted(value: Any, connection) -> Any:
    """A value as the ORM passes it to the database in a lookup on a model's column."""
    if type(value) is dt.datetime:
        if value.tzinfo is None and settings.USE_TZ:
            raise TypeError("a prepared read compares aware datetimes (USE_TZ is on)")
        return connection.ops.adapt_datetimefield_value(value)
    return value


@dataclass(frozen=True)
class _Instances:
    """What Django's ``ModelIterable`` works out per query, worked out once: the model's
    columns, its ``select_related`` objects' populators and the annotations' columns."""

    model: type[Model]
    columns: slice
    names: list[str]
    populators: list
    annotations: list[tuple[str, int]]

    @classmethod
    def of(cls, compiler, database: str) -> _Instances | None:
        klass_info, select = compiler.klass_info, compiler.select
        if klass_info is None:
            return None
        fields = klass_info["select_fields"]
        start, end = fields[0], fields[-1] + 1
        return cls(
            model=klass_info["model"],
            columns=slice(start, end),
            names=[column[0].target.attname for column in select[start:end]],
            populators=get_related_populators(klass_info, select, database),
            annotations=list((compiler.annotation_col_map or {}).items()),
        )

    def build(self, database: str, rows: list[tuple]) -> list[Model]:
        instances = []
        for row in rows:
            instance = self.model.from_db(database, self.names, row[self.columns])
            for populator in self.populators:
                populator.populate(row, instance)
            for name, position in self.annotations:
                setattr(instance, name, row[position])
            instances.append(instance)
        return instances


@dataclass(frozen=True)
class _Compiled:
    sql: str
    # Per parameter of the SQL: the index of the call's argument, or (-1, value) a constant.
    slots: tuple[tuple[int, Any], ...]
    converters: dict  # column position -> (converter functions, expression), as Django's
    instances: _Instances | None  # how rows become model instances (None: a values query)

    def params(self, args: tuple, connection) -> list:
        return [
            value if index < 0 else _adapted(args[index], connection) for index, value in self.slots
        ]


class PreparedRead:
    """``build(*args)`` returns the queryset; ``kinds`` are its arguments' types (int, str,
    datetime)."""

    def __init__(self, build: Callable[..., QuerySet], *kinds: type) -> None:
        self._build = build
        self._kinds = kinds
        self._compiled: dict[tuple[str, str], _Compiled] = {}
        self._database: str | None = None  # the alias reads of the model go to

    def rows(self, *args: Argument) -> list[tuple]:
        """The selected values of each row (a ``values_list`` queryset's columns)."""
        return self._run(args)[2]

    def first_row(self, *args: Argument) -> tuple | None:
        rows = self.rows(*args)
        return rows[0] if rows else None

    def objects(self, *args: Argument) -> list[Model]:
        """Model instances, with their ``select_related`` objects and annotations."""
        compiled, alias, rows = self._run(args)
        return compiled.instances.build(alias, rows)

    def first(self, *args: Argument) -> Model | None:
        instances = self.objects(*args)
        return instances[0] if instances else None

    def _run(self, args: tuple) -> tuple[_Compiled, str, list]:
        if len(args) != len(self._kinds) or not all(
            isinstance(arg, kind) and type(arg) in _KINDS
            for arg, kind in zip(args, self._kinds, strict=True)
        ):
            raise TypeError(f"arguments {args!r} do not match {self._kinds!r}")
        queryset_alias = self._database or self._sample().db
        compiled = self._compiled_for(queryset_alias)
        if any(type(arg) is int and not -_BIGGEST_INT <= arg <= _BIGGEST_INT for arg in args):
            return compiled, queryset_alias, []
        connection = connections[queryset_alias]
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, compiled.params(args, connection))
            rows = cursor.fetchall()
        if compiled.converters:
            rows = list(_converted(rows, compiled.converters, connection))
        return compiled, queryset_alias, rows

    def _compiled_for(self, alias: str) -> _Compiled:
        key = (alias, connections[alias].vendor)
        return self._compiled.get(key) or self._compile(key)

    def _sample(self) -> QuerySet:
        return self._build(*(_marker(kind, i) for i, kind in enumerate(self._kinds)))

    def _compile(self, key: tuple[str, str]) -> _Compiled:
        queryset = self._sample()
        compiler = queryset.query.get_compiler(using=key[0])
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:
            raise TypeError(f"a marker is out of range for a column of {queryset.model}") from None
        connection = connections[key[0]]
        markers = {_adapted(_marker(kind, i), connection): i for i, kind in enumerate(self._kinds)}
        slots = tuple(
            (markers[param], None) if _is_marker(param, markers) else (-1, param)
            for param in params
        )
        missing = set(markers.values()) - {index for index, _ in slots}
        if missing:  # Django changed an argument on its way to the SQL: not preparable
            raise TypeError(f"arguments {sorted(missing)} are not parameters of {sql!r}")
        columns = [column[0] for column in compiler.select[: compiler.col_count]]
        compiled = _Compiled(
            sql=sql,
            slots=slots,
            converters=compiler.get_converters(columns),
            instances=_Instances.of(compiler, key[0]),
        )
        self._compiled[key] = compiled
        self._database = key[0]
        return compiled


def _is_marker(param: Any, markers: dict) -> bool:
    return type(param) in _KINDS and param in markers


def _converted(rows: Iterable[tuple], converters: dict, connection) -> Iterable[tuple]:
    """Django's ``SQLCompiler.apply_converters``, with this thread's connection."""
    converters = list(converters.items())
    for row in rows:
        row = list(row)
        for position, (functions, expression) in converters:
            value = row[position]
            for function in functions:
                value = function(value, expression, connection)
            row[position] = value
        yield tuple(row)
