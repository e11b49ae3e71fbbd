"""The documented built-in functions of the formula language.

Each takes the already-evaluated arguments and raises TypeError (wrong types: reported as a syntax error) or
ValueError (bad values: reported as an evaluation error); the evaluator adds the line and column.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from .values import DoubleVec, type_name


def _flatten(name: str, args: list[object]) -> list[float]:
    """doubleVecList: any mix of double and doubleVec, converted to one vector."""
    out: list[float] = []
    for arg in args:
        if isinstance(arg, DoubleVec):
            out.extend(arg)
        elif isinstance(arg, float | int) and not isinstance(arg, bool):
            out.append(float(arg))
        else:
            raise TypeError(f"{name}() takes a list of double or doubleVec values, not {type_name(arg)}")
    return out


def _nonempty(name: str, args: list[object]) -> list[float]:
    values = _flatten(name, args)
    if not values:
        raise ValueError(f"{name}() was given no values (an empty doubleVec?)")
    return values


def _avg(args, ctx):
    v = _nonempty("avg", args)
    return sum(v) / len(v)


def _len(args, ctx):
    return float(len(_flatten("len", args)))


def _componentwise(name: str, fn: Callable[[float], float]):
    def apply(args, ctx):
        if len(args) == 1 and isinstance(args[0], float | int):
            return _safe(name, fn, float(args[0]))
        return DoubleVec(_safe(name, fn, x) for x in _flatten(name, args))
    return apply


def _safe(name: str, fn: Callable[[float], float], x: float) -> float:
    if x < 0:
        return math.nan
    if x == 0:
        return -math.inf
    return fn(x)


def _max(args, ctx):
    return max(_nonempty("max", args))


def _min(args, ctx):
    return min(_nonempty("min", args))


def _norm(args, ctx):
    return math.sqrt(sum(x * x for x in _flatten("norm", args)))


def _percentile(args, ctx):
    if len(args) != 2 or not isinstance(args[1], float | int):
        raise TypeError("percentile() takes (doubleVec v, double p)")
    values = sorted(_nonempty("percentile", [args[0]]))
    p = float(args[1])
    if not 0 <= p <= 100:
        raise ValueError(f"percentile() needs p between 0 and 100, got {p:g}")
    rank = max(1, math.ceil(p / 100 * len(values)))  # nearest-rank: "the percentile element"
    return values[rank - 1]


def _rand(args, ctx):
    if args:
        raise TypeError("rand() takes no arguments")
    return ctx.rng.random()


def _range(args, ctx):
    v = _nonempty("range", args)
    return max(v) - min(v)


def _std(args, ctx):
    v = _nonempty("std", args)
    if len(v) < 2:
        return 0.0
    mean = sum(v) / len(v)
    return math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1))


def _sum(args, ctx):
    return float(sum(_flatten("sum", args)))


def _time(args, ctx):
    if not args:
        return ctx.now
    if len(args) != 1 or not isinstance(args[0], str):
        raise TypeError("time() takes an optional string dateTime")
    return parse_datetime(args[0]) if args[0] else ctx.now


def _val(args, ctx):
    if len(args) != 2 or not isinstance(args[0], DoubleVec) or not isinstance(args[1], float | int):
        raise TypeError("val() takes (doubleVec v, double i)")
    i = int(args[1])
    if not 0 <= i < len(args[0]):
        raise ValueError(f"val() index {i} is out of range for a doubleVec of length {len(args[0])}")
    return args[0][i]


FUNCTIONS: dict[str, Callable] = {
    "avg": _avg, "len": _len, "lg": _componentwise("lg", math.log2), "ln": _componentwise("ln", math.log),
    "log": _componentwise("log", math.log10), "max": _max, "min": _min, "norm": _norm, "percentile": _percentile,
    "rand": _rand, "range": _range, "std": _std, "sum": _sum, "time": _time, "val": _val,
}
# stop() is handled by the evaluator: it ends evaluation rather than returning a value.

_W3C_DTF = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<mo>\d{2})(?:-(?P<d>\d{2})(?:T(?P<h>\d{2}):(?P<mi>\d{2})"
    r"(?::(?P<s>\d{2})(?P<f>\.\d+)?)?(?P<tz>Z|[+-]\d{2}:\d{2}))?)?)?$")


def parse_datetime(text: str) -> datetime:
    """W3C-DTF (ISO 8601 profile) or RFC 1123, as time("...") accepts; naive times are UTC."""
    text = text.strip()
    m = _W3C_DTF.match(text)
    if m:
        f = m.group("f")
        dt = datetime(int(m.group("y")), int(m.group("mo") or 1), int(m.group("d") or 1),
                      int(m.group("h") or 0), int(m.group("mi") or 0), int(m.group("s") or 0),
                      int(round(float(f) * 1_000_000)) if f else 0, tzinfo=UTC)
        tz = m.group("tz")
        if tz and tz != "Z":
            sign = 1 if tz[0] == "+" else -1
            dt -= sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
        return dt
    try:
        dt = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        dt = None
    if dt is None:
        raise ValueError(f"time() cannot parse '{text}': use W3C-DTF (2026-11-28T13:45:00Z) or RFC 1123 "
                         "(Sat, 28 Nov 2026 13:45:00 GMT)")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def new_rng(seed: int | None = None) -> random.Random:
    return random.Random(seed)  # noqa: S311 - rand() in a formula, not cryptography
