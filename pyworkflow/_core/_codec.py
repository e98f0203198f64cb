"""Payload codec: user values <-> JSON bytes, with msgspec. Never pickle.

Supported: JSON types, datetime, date, time, UUID, Decimal, enums, dataclasses, msgspec
Structs, and pydantic models when pydantic is installed (duck-typed: ``model_dump`` to encode,
``model_validate`` to decode). Values are decoded back into the type named by the function's
annotation, so a step annotated ``-> Order`` replays an ``Order``. Annotations are resolved
at first use (so a ``from __future__ import annotations`` module may define ``Order`` below
the step); one that can't be resolved then is an error, never skipped.

Refused before anything is written, with the value's path: ``bytes`` (and ``bytearray``,
``memoryview``), which JSON would hold as a base64 string that comes back as ``str``, and
NaN and infinite floats, which JSON would hold as ``null``. Finding them costs no second
walk over the value in Python: a msgpack encoding (native, fast) marks both with bytes that
a regular expression spots, and only a value so marked is walked to name the path.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import math
import re
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from .._exceptions import ConfigurationError, SerializationError
from ._caused import caused

__all__ = ["Codec", "decode_value", "encode_value"]


def _enc_hook(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if callable(dump):  # pydantic v2 model
        return dump(mode="json")
    msg = f"Encoding objects of type {type(obj).__qualname__} is unsupported"
    raise NotImplementedError(msg)


def _dec_hook(tp: type, obj: Any) -> Any:
    if tp is object:
        return obj
    validate = getattr(tp, "model_validate", None)
    if callable(validate):
        return validate(obj)
    msg = f"decoding into {tp!r} is unsupported"
    raise NotImplementedError(msg)


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook, decimal_format="string")
_MSGPACK = msgspec.msgpack.Encoder(enc_hook=_enc_hook, decimal_format="string")
_ANY_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder()
_NO_KWARGS = msgspec.Raw(b"{}")

# In msgpack: a bin header (bytes, bytearray, memoryview), or a float64 whose exponent bits
# are all set (NaN, +-inf). Other bytes may match too (UTF-8 text, integer bodies): such a
# value is walked, and passes if the walk finds nothing.
_SUSPECT = re.compile(rb"[\xc4-\xc6]|\xcb[\x7f\xff][\xf0-\xff]")
_NEVER_SUSPECT = frozenset({str, int, bool, type(None)})
_EXACT = _NEVER_SUSPECT  # and their JSON decodes to an equal value of the same type
_BYTES_TYPES = (bytes, bytearray, memoryview)


@functools.lru_cache(maxsize=512)
def _decoder(tp: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(tp, dec_hook=_dec_hook)


def encode_value(value: Any, *, what: str, path: str = "value") -> msgspec.Raw:
    """Encode ``value`` to JSON, or raise :class:`SerializationError` naming ``what`` and,
    for a part of it that JSON can't hold faithfully, its ``path`` (e.g. ``result[2].amount``).
    """
    try:
        raw = _ENCODER.encode(value)
        suspect = type(value) not in _NEVER_SUSPECT and _SUSPECT.search(_MSGPACK.encode(value))
    except (TypeError, NotImplementedError, ValueError, OverflowError) as exc:
        msg = (
            f"cannot store {what}: value {_short(value)} of type {type(value).__qualname__} "
            f"is not serializable ({exc}); use JSON types, datetime, UUID, Decimal, enums, "
            "dataclasses, msgspec.Struct or pydantic models"
        )
        raise caused(SerializationError(msg), exc)
    if suspect and (found := _unfaithful(value, path)) is not None:
        where, part = found
        raise SerializationError(f"cannot store {what}: {where} is {_short(part)}; {_fix(part)}")
    return msgspec.Raw(raw)


def _unfaithful(value: Any, path: str) -> tuple[str, Any] | None:
    """The path and value of the first part of ``value`` that JSON can't hold faithfully."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, value)
    if isinstance(value, _BYTES_TYPES):
        return path, value
    if isinstance(value, str | int | type(None)):
        return None
    items: Any = ()
    if isinstance(value, dict):
        for key in value:  # keys as well: msgspec writes bytes and float keys as strings
            if (found := _unfaithful(key, f"{path} key {key!r}")) is not None:
                return found
        items = ((f"{path}[{k!r}]", v) for k, v in value.items())
    elif isinstance(value, list | tuple | set | frozenset):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    elif isinstance(value, msgspec.Struct):
        items = ((f"{path}.{n}", getattr(value, n)) for n in value.__struct_fields__)
    elif dataclasses.is_dataclass(value):
        items = ((f"{path}.{f.name}", getattr(value, f.name)) for f in dataclasses.fields(value))
    elif isinstance(value, enum.Enum):
        items = ((f"{path}.value", value.value),)
    for where, item in items:
        if (found := _unfaithful(item, where)) is not None:
            return found
    return None


def _fix(part: Any) -> str:
    if isinstance(part, float):
        return (
            "JSON has no NaN or infinity (it would be stored as null); store None, a string "
            "or a Decimal instead"
        )
    return (
        f"{type(part).__qualname__} values are not stored (JSON would hold a base64 string "
        "that comes back as str); store base64.b64encode(data).decode() or a reference to "
        "the data (a path, a URL) instead"
    )


def decode_value(raw: msgspec.Raw | bytes, tp: Any = Any, *, what: str = "value") -> Any:
    """Decode JSON ``raw`` into ``tp`` (plain Python values for ``Any``)."""
    try:
        if tp is Any:
            return _ANY_DECODER.decode(raw)
        try:
            return _decoder(tp).decode(raw)
        except (TypeError, NotImplementedError):  # an annotation msgspec can't target
            return _ANY_DECODER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        msg = f"cannot decode stored {what} as {tp!r}: {exc}"
        raise caused(SerializationError(msg), exc)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _hints(fn: Callable[..., Any], what: str) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except NameError as exc:
        msg = (
            f"cannot resolve the annotations of {what} ({_origin(fn)}): name {exc.name!r} is "
            f"not defined; define or import {exc.name!r} at module level in "
            f"{fn.__module__!r}, where it can be found when the function is first used"
        )
        raise caused(ConfigurationError(msg), exc)
    except Exception as exc:  # an annotation that isn't a type (TypeError, SyntaxError...)
        msg = f"cannot resolve the annotations of {what} ({_origin(fn)}): {exc}"
        raise caused(ConfigurationError(msg), exc)


def _origin(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


def _usable(tp: Any) -> Any:
    """Map annotations msgspec can't target (None-returning, Awaitable, TypeVars) to Any."""
    if tp is None or tp is type(None) or isinstance(tp, typing.TypeVar):
        return Any
    try:
        _decoder(tp)
    except (TypeError, ValueError):
        return Any
    return tp


def _positional_counts(signature: inspect.Signature) -> tuple[int, int] | None:
    """(required, total) positional parameters of a signature that has nothing else (no
    ``*args``, keyword-only or ``**kwargs`` parameter), else None."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = signature.parameters.values()
    if any(p.kind not in kinds for p in params):
        return None
    required = sum(p.default is inspect.Parameter.empty for p in params)
    return required, len(signature.parameters)


class Codec:
    """Converts one callable's arguments and results to and from JSON.

    Its annotations are resolved at first use (:meth:`resolve`), not when it is made.
    """

    __slots__ = (
        "_fn",
        "_params",
        "_positional",
        "_result_decoder",
        "_return",
        "_signature",
        "_what",
        "resolved",
    )

    def __init__(self, fn: Callable[..., Any], what: str | None = None) -> None:
        self._fn = fn
        self._what = what or repr(fn.__qualname__)
        self._signature = inspect.signature(fn)
        self._positional = _positional_counts(self._signature)
        self._params: dict[str, Any] = {}
        self._return: Any = Any
        self._result_decoder: msgspec.json.Decoder[Any] = _ANY_DECODER
        self.resolved = False

    def resolve(self) -> None:
        """Resolve the annotations into decode targets, once.

        Raises:
            ConfigurationError: an annotation names something that doesn't exist (yet).
        """
        if self.resolved:
            return
        hints = _hints(self._fn, self._what)
        self._params = {name: _usable(hints.get(name, Any)) for name in self._signature.parameters}
        self._return = _usable(hints.get("return", Any))
        self._result_decoder = _ANY_DECODER if self._return is Any else _decoder(self._return)
        self.resolved = True

    def bind(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Check that ``args``/``kwargs`` fit the signature, or raise a clear TypeError."""
        counts = self._positional
        if not kwargs and counts is not None and counts[0] <= len(args) <= counts[1]:
            return  # positional arguments only, as many as the signature takes
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            msg = f"bad arguments for {name}{self._signature}: {exc}"
            raise caused(TypeError(msg), None)

    def encode_args(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[msgspec.Raw, msgspec.Raw]:
        return (
            encode_value(list(args), what=f"the positional arguments of {name}", path="args"),
            encode_value(kwargs, what=f"the keyword arguments of {name}", path="kwargs")
            if kwargs
            else _NO_KWARGS,
        )

    def decode_args(
        self, raw_args: msgspec.Raw, raw_kwargs: msgspec.Raw
    ) -> tuple[list[Any], dict[str, Any]]:
        self.resolve()
        types = list(self._params.values())
        plain_args = decode_value(raw_args, list[msgspec.Raw], what="arguments")
        args = [
            decode_value(raw, types[i] if i < len(types) else Any)
            for i, raw in enumerate(plain_args)
        ]
        if raw_kwargs == _NO_KWARGS:  # the usual case: positional arguments only
            return args, {}
        plain_kwargs = decode_value(raw_kwargs, dict[str, msgspec.Raw], what="arguments")
        kwargs = {k: decode_value(v, self._params.get(k, Any)) for k, v in plain_kwargs.items()}
        return args, kwargs

    def encode_result(self, value: Any, *, what: str) -> msgspec.Raw:
        return encode_value(value, what=what, path="result")

    def live_result(self, value: Any, raw: msgspec.Raw) -> Any:
        """What the caller of a step that just returned ``value`` (encoded as ``raw``) gets:
        what a replay would give, ``decode_result(raw)``. An int, str, bool or None that the
        return annotation takes as it is comes back unchanged, which is what decoding it
        would give (JSON holds those exactly), without decoding."""
        if type(value) in _EXACT and (self._return is Any or self._return is type(value)):
            return value
        return self.decode_result(raw)

    def decode_result(self, raw: msgspec.Raw) -> Any:
        """``decode_value(raw, <return annotation>, what="result")``, with the decoder kept
        (every replayed step takes this path)."""
        if not self.resolved:
            self.resolve()
        try:
            try:
                return self._result_decoder.decode(raw)
            except (TypeError, NotImplementedError):  # as decode_value
                return _ANY_DECODER.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            msg = f"cannot decode stored result as {self._return!r}: {exc}"
            raise caused(SerializationError(msg), exc)
