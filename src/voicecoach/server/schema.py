"""A tiny declarative validator that fails the way the real Realtime API fails.

The real server checks every client payload against an allow-list and answers the *first* problem with an
``error`` event whose ``code``, ``param`` (a dotted path such as ``session.audio.input.format.rate`` or
``item.content[0].text``) and message follow fixed patterns (realtime-protocol.md §8). Pydantic's error
shapes are different, so the specs here are plain objects with one method, ``check(value, param)``, which
returns the (possibly normalised) value or raises :class:`WireError`.

Order of checks inside an object: required keys first, then each present key in the order the client sent
it; an unknown key fails as ``unknown_parameter`` when it is reached.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class WireError(Exception):
    """A client mistake that becomes an ``error`` event (or an HTTP 4xx body); never closes the session."""

    def __init__(self, code: str | None, message: str, param: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.kind = kind

    def to_error(self, client_event_id: str | None) -> dict[str, Any]:
        """The ``error`` object of an ``error`` event (``event_id`` echoes the client's event id)."""
        return {
            "type": self.kind,
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "event_id": client_event_id,
        }


def quote_list(values: Sequence[Any]) -> str:
    """``'a', 'b', and 'c'`` / ``'a' and 'b'`` — the enumeration style of the API's messages."""
    quoted = [f"'{v}'" for v in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def _kind_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def invalid_type(param: str, expected: str, value: Any) -> WireError:
    return WireError(
        "invalid_type",
        f"Invalid type for '{param}': expected {expected}, but got {_kind_name(value)} instead.",
        param,
    )


def unknown_parameter(param: str) -> WireError:
    return WireError("unknown_parameter", f"Unknown parameter: '{param}'.", param)


def missing_parameter(param: str) -> WireError:
    return WireError("missing_required_parameter", f"Missing required parameter: '{param}'.", param)


def invalid_value(param: str, value: Any, allowed: Sequence[Any]) -> WireError:
    return WireError("invalid_value", f"Invalid value: '{value}'. Supported values are: {quote_list(allowed)}.", param)


def join(param: str, key: str) -> str:
    """``session`` + ``type`` → ``session.type``; at the top level of an event the key alone."""
    return f"{param}.{key}" if param else key


class Spec:
    def check(self, value: Any, param: str) -> Any:
        raise NotImplementedError


@dataclass
class Str(Spec):
    max_length: int | None = None

    def check(self, value: Any, param: str) -> Any:
        if not isinstance(value, str):
            raise invalid_type(param, "a string", value)
        if self.max_length is not None and len(value) > self.max_length:
            raise WireError(
                "string_above_max_length",
                f"Invalid '{param}': string too long. Expected a string with maximum length {self.max_length}, "
                f"but got a string with length {len(value)} instead.",
                param,
            )
        return value


@dataclass
class Bool(Spec):
    def check(self, value: Any, param: str) -> Any:
        if not isinstance(value, bool):
            raise invalid_type(param, "a boolean", value)
        return value


@dataclass
class Int(Spec):
    minimum: int | None = None
    maximum: int | None = None

    def check(self, value: Any, param: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid_type(param, "an integer", value)
        if self.minimum is not None and value < self.minimum:
            raise _range_error("integer", "below", self.minimum, value, param)
        if self.maximum is not None and value > self.maximum:
            raise _range_error("integer", "above", self.maximum, value, param)
        return value


@dataclass
class Num(Spec):
    minimum: float | None = None
    maximum: float | None = None

    def check(self, value: Any, param: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise invalid_type(param, "a decimal", value)
        if self.minimum is not None and value < self.minimum:
            raise _range_error("decimal", "below", self.minimum, value, param)
        if self.maximum is not None and value > self.maximum:
            raise _range_error("decimal", "above", self.maximum, value, param)
        return float(value)


def _range_error(kind: str, side: str, bound: float, value: Any, param: str) -> WireError:
    """``integer_below_min_value`` and friends, with the API's message pattern."""
    limit = "min" if side == "below" else "max"
    op = ">=" if side == "below" else "<="
    return WireError(
        f"{kind}_{side}_{limit}_value",
        f"Invalid '{param}': {kind} {side} {limit}imum value. Expected a value {op} {bound}, but got {value} instead.",
        param,
    )


@dataclass
class Enum(Spec):
    values: tuple[Any, ...]

    def check(self, value: Any, param: str) -> Any:
        if isinstance(value, list | dict):
            raise invalid_type(param, f"one of {quote_list(self.values)}", value)
        if value not in self.values:
            raise invalid_value(param, value, self.values)
        return value


@dataclass
class Nullable(Spec):
    inner: Spec

    def check(self, value: Any, param: str) -> Any:
        return None if value is None else self.inner.check(value, param)


@dataclass
class OneOf(Spec):
    """Try each spec in turn. On failure the last error of an option that *applied* (did not fail on the JSON
    kind alone) is reported, so a bad object is explained as an object and a bad string as a string."""

    options: tuple[Spec, ...]

    def check(self, value: Any, param: str) -> Any:
        errors: list[WireError] = []
        for option in self.options:
            try:
                return option.check(value, param)
            except WireError as exc:
                errors.append(exc)
        applied = [e for e in errors if not (e.code == "invalid_type" and e.param == param)]
        raise (applied or errors)[-1]


@dataclass
class ListOf(Spec):
    item: Spec
    max_items: int | None = None

    def check(self, value: Any, param: str) -> Any:
        if not isinstance(value, list):
            raise invalid_type(param, "an array", value)
        if self.max_items is not None and len(value) > self.max_items:
            raise WireError(
                "array_above_max_length",
                f"Invalid '{param}': array too long. Expected an array with maximum length {self.max_items}, "
                f"but got an array with length {len(value)} instead.",
                param,
            )
        return [self.item.check(v, f"{param}[{i}]") for i, v in enumerate(value)]


@dataclass
class Obj(Spec):
    """A JSON object with a fixed set of keys. ``required`` keys must be present (and may not be null)."""

    fields: Mapping[str, Spec]
    required: tuple[str, ...] = ()

    def check(self, value: Any, param: str) -> Any:
        if not isinstance(value, dict):
            raise invalid_type(param, "an object", value)
        for key in self.required:
            if value.get(key) is None:
                raise missing_parameter(join(param, key))
        out: dict[str, Any] = {}
        for key, sub in value.items():
            spec = self.fields.get(key)
            if spec is None:
                raise unknown_parameter(join(param, key))
            out[key] = spec.check(sub, join(param, key))
        return out


@dataclass
class Tagged(Spec):
    """An object discriminated by its ``type`` key (``tag``); each variant validates the whole object."""

    variants: Mapping[str, Spec]
    tag: str = "type"
    default: str | None = None  # variant used when the tag is absent (None: the tag is required)

    def check(self, value: Any, param: str) -> Any:
        if not isinstance(value, dict):
            raise invalid_type(param, "an object", value)
        tag = value.get(self.tag, self.default)
        if tag is None:
            raise missing_parameter(join(param, self.tag))
        if not isinstance(tag, str):
            raise invalid_type(join(param, self.tag), "a string", tag)
        if tag not in self.variants:
            raise invalid_value(join(param, self.tag), tag, tuple(self.variants))
        return self.variants[tag].check(value, param)


@dataclass
class Map(Spec):
    """A free-form string→string object (``metadata``) with the API's size limits."""

    max_properties: int = 16
    key: Spec = field(default_factory=lambda: Str(max_length=64))
    value: Spec = field(default_factory=lambda: Str(max_length=512))

    def check(self, value: Any, param: str) -> Any:
        if not isinstance(value, dict):
            raise invalid_type(param, "an object", value)
        if len(value) > self.max_properties:
            raise WireError(
                "object_above_max_properties",
                f"Invalid '{param}': too many properties. Expected an object with at most {self.max_properties} "
                f"properties, but got an object with {len(value)} properties instead.",
                param,
            )
        return {self.key.check(k, f"{param}.{k}"): self.value.check(v, f"{param}.{k}") for k, v in value.items()}


@dataclass
class AnyValue(Spec):
    """Accepted as is (free-form JSON the server does not interpret, e.g. tool parameter schemas)."""

    def check(self, value: Any, param: str) -> Any:
        return value
