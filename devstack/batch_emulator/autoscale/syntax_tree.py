"""Syntax tree of an autoscale formula. Every node keeps the position the service would name in an error."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Node:
    line: int
    col: int


@dataclass(frozen=True)
class Number(Node):
    value: float


@dataclass(frozen=True)
class String(Node):
    value: str


@dataclass(frozen=True)
class Name(Node):
    name: str


@dataclass(frozen=True)
class Unary(Node):
    op: str
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Conditional(Node):
    condition: Node
    if_true: Node
    if_false: Node


@dataclass(frozen=True)
class Call(Node):
    function: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Member(Node):
    target: Node
    member: str


@dataclass(frozen=True)
class MethodCall(Node):
    """``target.Method(args)``; line/col point at the opening parenthesis, where the service reports sample errors."""

    target: Node
    method: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Assign(Node):
    name: str
    expr: Node


@dataclass(frozen=True)
class ExprStatement(Node):
    expr: Node


@dataclass(frozen=True)
class Formula:
    statements: tuple[Node, ...]
    source: str
