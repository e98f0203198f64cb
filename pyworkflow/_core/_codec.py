"""Payload codec: user values <-> JSON bytes, with msgspec. Never pickle.

Supported: JSON types, datetime, date, time, UUID, Decimal, enums, dataclasses, msgspec
Structs, and pydantic models when pydantic is installed (duck-typed: ``model_dump`` to encode,
``model_validate`` to decode). Values are decoded back into the type named by the function's
annotation, so a step annotated ``-> Order`` replays an ``Order``.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from .._exceptions import SerializationError

__all__ = ["Codec", "decode_value", "encode_value", "param_types", "return_type"]


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
_ANY_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder()


@functools.lru_cache(maxsize=512)
def _decoder(tp: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(tp, dec_hook=_dec_hook)


def encode_value(value: Any, *, what: str) -> msgspec.Raw:
    """Encode ``value`` to JSON, or raise :class:`SerializationError` naming ``what``."""
    try:
        return msgspec.Raw(_ENCODER.encode(value))
    except (TypeError, NotImplementedError, ValueError, OverflowError) as exc:
        msg = (
            f"cannot store {what}: value {_short(value)} of type {type(value).__qualname__} "
            f"is not serializable ({exc}); use JSON types, datetime, UUID, Decimal, enums, "
            "dataclasses, msgspec.Struct or pydantic models"
        )
        raise SerializationError(msg) from exc


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
        raise SerializationError(msg) from exc


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: decode as plain values
        return {}


def _usable(tp: Any) -> Any:
    """Map annotations msgspec can't target (None-returning, Awaitable, TypeVars) to Any."""
    if tp is None or tp is type(None) or isinstance(tp, typing.TypeVar):
        return Any
    try:
        _decoder(tp)
    except (TypeError, ValueError):
        return Any
    return tp


def return_type(fn: Callable[..., Any]) -> Any:
    """The decode target for ``fn``'s return value (``Any`` when unannotated)."""
    return _usable(_hints(fn).get("return", Any))


def param_types(fn: Callable[..., Any]) -> dict[str, Any]:
    """Decode targets for ``fn``'s parameters, by name."""
    hints = _hints(fn)
    return {name: _usable(hints.get(name, Any)) for name in inspect.signature(fn).parameters}


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
    """Converts one callable's arguments and results to and from JSON."""

    __slots__ = ("_params", "_positional", "_return", "_signature")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._signature = inspect.signature(fn)
        self._params = param_types(fn)
        self._return = return_type(fn)
        self._positional = _positional_counts(self._signature)

    def bind(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Check that ``args``/``kwargs`` fit the signature, or raise a clear TypeError."""
        counts = self._positional
        if not kwargs and counts is not None and counts[0] <= len(args) <= counts[1]:
            return  # positional arguments only, as many as the signature takes
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            msg = f"bad arguments for {name}{self._signature}: {exc}"
            raise TypeError(msg) from None

    def encode_args(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[msgspec.Raw, msgspec.Raw]:
        return (
            encode_value(list(args), what=f"the positional arguments of {name}"),
            encode_value(kwargs, what=f"the keyword arguments of {name}"),
        )

    def decode_args(
        self, raw_args: msgspec.Raw, raw_kwargs: msgspec.Raw
    ) -> tuple[list[Any], dict[str, Any]]:
        names = list(self._params)
        plain_args = decode_value(raw_args, list[msgspec.Raw], what="arguments")
        plain_kwargs = decode_value(raw_kwargs, dict[str, msgspec.Raw], what="arguments")
        args = [
            decode_value(raw, self._params[names[i]] if i < len(names) else Any)
            for i, raw in enumerate(plain_args)
        ]
        kwargs = {k: decode_value(v, self._params.get(k, Any)) for k, v in plain_kwargs.items()}
        return args, kwargs

    def encode_result(self, value: Any, *, what: str) -> msgspec.Raw:
        return encode_value(value, what=what)

    def decode_result(self, raw: msgspec.Raw) -> Any:
        return decode_value(raw, self._return, what="result")
