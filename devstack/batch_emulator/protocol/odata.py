"""OData query options of the Batch list/get operations: ``$filter``, ``$select``, ``maxresults``/``$skiptoken``.

The ``$filter`` grammar covers what Batch clients send in practice: comparisons (eq, ne, gt, ge, lt, le) of a
property path (``state``, ``executionInfo/result``, ``id``...) with a string, number, boolean or
``datetime'...'`` literal, ``startswith(prop,'x')``, ``not``, ``and``/``or`` and parentheses.
Paging is stateless: the skip token carries the query and the offset, so a nextLink works after a restart.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable

from devstack.batch_emulator import errors

Predicate = Callable[[dict], bool]

_TOKEN = re.compile(
    r"\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<comma>,)|(?P<str>'(?:[^']|'')*')|(?P<dt>datetime'[^']*')"
    r"|(?P<num>-?\d+(?:\.\d+)?)|(?P<word>[A-Za-z_$][A-Za-z0-9_/.$]*))"
)
_OPS = {"eq", "ne", "gt", "ge", "lt", "le"}


def _tokenize(text: str) -> list[tuple[str, str]]:
    pos, out = 0, []
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise errors.invalid_query("$filter", text, f"Unexpected character at position {pos}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def fail(self, reason: str):
        raise errors.invalid_query("$filter", self.text, reason)

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else (None, None)

    def take(self):
        tok = self.peek()
        if tok[0] is None:
            self.fail("Unexpected end of the filter")
        self.i += 1
        return tok

    def parse(self) -> Predicate:
        pred = self.expr()
        if self.i != len(self.tokens):
            self.fail(f"Unexpected '{self.peek()[1]}'")
        return pred

    def expr(self) -> Predicate:
        terms = [self.term()]
        while self.peek() == ("word", "or"):
            self.take()
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else (lambda d, ts=tuple(terms): any(t(d) for t in ts))

    def term(self) -> Predicate:
        facts = [self.factor()]
        while self.peek() == ("word", "and"):
            self.take()
            facts.append(self.factor())
        return facts[0] if len(facts) == 1 else (lambda d, fs=tuple(facts): all(f(d) for f in fs))

    def factor(self) -> Predicate:
        kind, value = self.take()
        if kind == "lp":
            inner = self.expr()
            if self.take()[0] != "rp":
                self.fail("Missing ')'")
            return inner
        if kind == "word" and value == "not":
            inner = self.factor()
            return lambda d: not inner(d)
        if kind == "word" and value in ("startswith", "endswith", "substringof") and self.peek()[0] == "lp":
            return self.function(value)
        if kind != "word":
            self.fail(f"Expected a property name, got '{value}'")
        op_kind, op = self.take()
        if op_kind != "word" or op not in _OPS:
            self.fail(f"Expected a comparison operator after '{value}'")
        literal = self.literal()
        return _comparison(value, op, literal)

    def function(self, name: str) -> Predicate:
        self.take()
        a_kind, a = self.take()
        if self.take()[0] != "comma":
            self.fail(f"{name} takes two arguments")
        b = self.literal()
        if self.take()[0] != "rp":
            self.fail("Missing ')'")
        if name == "substringof":  # substringof('x', prop)
            a, b = b, a
        if a_kind not in ("word", "str"):
            self.fail(f"Bad argument to {name}")
        prop = a
        if name == "startswith":
            return lambda d: str(_lookup(d, prop) or "").startswith(str(b))
        if name == "endswith":
            return lambda d: str(_lookup(d, prop) or "").endswith(str(b))
        return lambda d: str(b) in str(_lookup(d, prop) or "")

    def literal(self):
        kind, value = self.take()
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if kind == "dt":
            return value[len("datetime'"):-1]
        if kind == "num":
            return float(value) if "." in value else int(value)
        if kind == "word" and value in ("true", "false"):
            return value == "true"
        if kind == "word" and value == "null":
            return None
        self.fail(f"Expected a literal, got '{value}'")
        return None


def _lookup(d: dict, path: str):
    cur = d
    for part in path.split("/"):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _comparison(prop: str, op: str, literal) -> Predicate:
    def compare(d: dict) -> bool:
        value = _lookup(d, prop)
        if isinstance(value, str) and isinstance(literal, str) and prop.split("/")[-1] in ("state", "result",
                                                                                         "previousState"):
            value, lit = value.lower(), literal.lower()
        else:
            lit = literal
        if op == "eq":
            return value == lit
        if op == "ne":
            return value != lit
        if value is None or lit is None:
            return False
        try:
            return {"gt": value > lit, "ge": value >= lit, "lt": value < lit, "le": value <= lit}[op]
        except TypeError:
            return False
    return compare


def parse_filter(text: str | None) -> Predicate | None:
    """A predicate over wire dicts, or None for no filter; raises InvalidQueryParameterValue when malformed."""
    if text is None or not text.strip():
        return None
    return _Parser(text).parse()


def parse_select(text: str | None) -> list[str] | None:
    if text is None or not text.strip():
        return None
    return [p.strip() for p in text.split(",") if p.strip()]


def apply_select(body: dict, select: list[str] | None) -> dict:
    if not select:
        return body
    out = {}
    for key in select:
        top = key.split("/")[0]
        if top in body:
            out[top] = body[top]
    for key in ("odata.metadata",):
        if key in body:
            out[key] = body[key]
    return out


def parse_maxresults(text: str | None, default: int = 1000) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise errors.invalid_query("maxresults", text, "maxresults must be an integer") from None
    if value < 1 or value > 1000:
        raise errors.invalid_query("maxresults", text, "maxresults must be between 1 and 1000")
    return value


def make_skiptoken(state: dict) -> str:
    raw = json.dumps(state, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_skiptoken(token: str) -> dict:
    try:
        padded = token + "=" * (-len(token) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(state, dict):
            raise ValueError("not an object")
        return state
    except (ValueError, binascii.Error, json.JSONDecodeError):
        raise errors.invalid_query("$skiptoken", token, "The skip token is not valid") from None
