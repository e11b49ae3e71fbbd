"""Tokenizer for autoscale formulas: turns the formula text into tokens that remember line and column.

Positions are 1-based like the service's ``Line L, Col C`` messages. ``//`` starts a comment that runs to the end
of the line; line breaks are otherwise whitespace (the parser uses them only to tolerate a missing ``;``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import syntax_error

NUMBER, NAME, STRING, OP, EOF = "number", "name", "string", "op", "eof"

# Longest first so that "<=" wins over "<".
_OPERATORS = ("&&", "||", "<=", ">=", "==", "!=", "+", "-", "*", "/", "!", "<", ">", "?", ":", "=", "(", ")",
              ",", ".", ";")


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    line: int
    col: int
    value: object = None
    newline_before: bool = False


def tokenize(source: str) -> list[Token]:
    """Split ``source`` into tokens, ending with an EOF token; raises a syntax FormulaError on a stray character."""
    tokens: list[Token] = []
    i, line, line_start, n = 0, 1, 0, len(source)
    saw_newline = False
    while i < n:
        ch = source[i]
        col = i - line_start + 1
        if ch == "\n":
            i, line, line_start, saw_newline = i + 1, line + 1, i + 1, True
            continue
        if ch in " \t\r\f\v":
            i += 1
            continue
        if source.startswith("//", i):
            while i < n and source[i] != "\n":
                i += 1
            continue
        if ch.isdigit() or (ch == "." and i + 1 < n and source[i + 1].isdigit()):
            j = _scan_number(source, i)
            text = source[i:j]
            tokens.append(Token(NUMBER, text, line, col, float(text), saw_newline))
            i = j
        elif ch.isalpha() or ch in "_$":
            j = i + 1
            while j < n and (source[j].isalnum() or source[j] == "_"):
                j += 1
            text = source[i:j]
            if text == "$":
                raise syntax_error("'$' must be followed by a variable name", line, col)
            tokens.append(Token(NAME, text, line, col, None, saw_newline))
            i = j
        elif ch == '"':
            j = source.find('"', i + 1)
            if j < 0 or "\n" in source[i:j]:
                raise syntax_error("Unterminated string literal", line, col)
            tokens.append(Token(STRING, source[i:j + 1], line, col, source[i + 1:j], saw_newline))
            i = j + 1
        else:
            op = next((o for o in _OPERATORS if source.startswith(o, i)), None)
            if op is None:
                raise syntax_error(f"Unexpected character '{ch}'", line, col)
            tokens.append(Token(OP, op, line, col, None, saw_newline))
            i += len(op)
        saw_newline = False
    tokens.append(Token(EOF, "", line, i - line_start + 1, None, saw_newline))
    return tokens


def _scan_number(source: str, i: int) -> int:
    n = len(source)
    j = i
    while j < n and source[j].isdigit():
        j += 1
    if j < n and source[j] == "." and j + 1 < n and source[j + 1].isdigit():
        j += 1
        while j < n and source[j].isdigit():
            j += 1
    if j < n and source[j] in "eE":
        k = j + 1
        if k < n and source[k] in "+-":
            k += 1
        if k < n and source[k].isdigit():
            j = k
            while j < n and source[j].isdigit():
                j += 1
    return j
