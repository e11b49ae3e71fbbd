"""Evaluates a parsed formula against a pool's state and sample history, as one service evaluation does.

The outcome is an Evaluation: the target node counts, the deallocation option, every variable the formula set,
and the service-formatted ``results`` string; or the FormulaError that stopped it (the pool then keeps its size).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from . import syntax_tree as t
from .errors import INSUFFICIENT_SAMPLES, FormulaError, StopEvaluation, evaluation_error, syntax_error
from .functions import FUNCTIONS, new_rng
from .parser import parse
from .samples import CURRENT_VALUE_METRICS, SAMPLED_METRICS, InsufficientSamples, Metric, SampleHistory
from .values import (
    DEALLOCATION_OPTIONS,
    TIME_INTERVALS,
    DeallocationOption,
    DoubleVec,
    Interval,
    format_value,
    type_name,
)

TARGET_DEDICATED = "$TargetDedicatedNodes"
TARGET_LOW_PRIORITY = "$TargetLowPriorityNodes"
DEALLOCATION = "$NodeDeallocationOption"
_ALIASES = {"$targetdedicated": TARGET_DEDICATED, "$targetlowpriority": TARGET_LOW_PRIORITY}
_WRITABLE = {name.lower(): name for name in (TARGET_DEDICATED, TARGET_LOW_PRIORITY, DEALLOCATION)}
_READ_ONLY = {f"${name}".lower(): name for name in SAMPLED_METRICS}
_TIMESTAMP_MEMBERS = ("year", "month", "day", "weekday", "hour", "minute", "second")
_METHODS = ("GetSample", "GetSamplePercent", "GetSamplePeriod", "Count", "HistoryBeginTime")


@dataclass
class PoolState:
    """What a formula can see of the pool at evaluation time.

    ``current`` holds the latest metric values (CurrentDedicatedNodes, TaskSlotsPerNode, ...); ``target_*`` are
    the pool's targets before this evaluation (what ``$TargetDedicatedNodes`` reads until the formula sets it).
    """

    history: SampleHistory
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    current: Mapping[str, float] = field(default_factory=dict)
    target_dedicated: float = 0.0
    target_low_priority: float = 0.0
    rng: random.Random | None = None


@dataclass
class Evaluation:
    timestamp: datetime
    variables: dict[str, object]
    target_dedicated: int | None = None
    target_low_priority: int | None = None
    node_deallocation_option: str = "requeue"
    error: FormulaError | None = None

    @property
    def results(self) -> str:
        return format_results(self.variables)

    def to_wire(self) -> dict:
        """The AutoScaleRun dict of the Batch REST API."""
        run: dict = {"timestamp": self.timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z"),
                     "results": self.results}
        if self.error is not None:
            run["error"] = self.error.to_wire()
        return run


def format_results(variables: Mapping[str, object]) -> str:
    """``$TargetDedicatedNodes=..;$TargetLowPriorityNodes=..;$NodeDeallocationOption=..`` then the formula's own
    variables sorted by name (as in the service's documented output), separated by semicolons."""
    fixed = [TARGET_DEDICATED, TARGET_LOW_PRIORITY, DEALLOCATION]
    others = sorted((k for k in variables if k not in fixed), key=lambda k: (k.lstrip("$").lower(), k))
    return ";".join(f"{k}={format_value(variables[k])}" for k in fixed + others if k in variables)


def evaluate(formula: str | t.Formula, state: PoolState) -> Evaluation:
    """Parse (if needed) and evaluate ``formula``; never raises FormulaError, returns it in ``Evaluation.error``."""
    variables: dict[str, object] = {
        TARGET_DEDICATED: float(state.target_dedicated),
        TARGET_LOW_PRIORITY: float(state.target_low_priority),
        DEALLOCATION: DeallocationOption("requeue"),
    }
    evaluation = Evaluation(timestamp=state.now, variables=variables)
    try:
        tree = parse(formula) if isinstance(formula, str) else formula
        _Interpreter(state, variables).run(tree)
        evaluation.target_dedicated = _node_count(variables[TARGET_DEDICATED], TARGET_DEDICATED)
        evaluation.target_low_priority = _node_count(variables[TARGET_LOW_PRIORITY], TARGET_LOW_PRIORITY)
        evaluation.node_deallocation_option = str(variables[DEALLOCATION])
    except FormulaError as exc:
        evaluation.error = exc
    return evaluation


def _node_count(value: object, name: str) -> int:
    """The service takes the integer part of a target; negative targets mean 0."""
    if not isinstance(value, float | int) or not math.isfinite(value):
        raise evaluation_error(f"{name} must be a finite double, got {format_value(value)}", 0, 0)
    return max(0, math.floor(value))


class _Interpreter:
    def __init__(self, state: PoolState, variables: dict[str, object]) -> None:
        self.state = state
        self.vars = variables
        self.aliases: dict[str, object] = {}
        self.assigned: set[str] = set()
        self.rng = state.rng or new_rng()

    @property
    def now(self) -> datetime:
        return self.state.now

    def run(self, formula: t.Formula) -> None:
        try:
            for statement in formula.statements:
                if isinstance(statement, t.Assign):
                    self.assign(statement)
                else:
                    self.eval(statement.expr)
        except StopEvaluation:
            pass
        # "If both the fully named variable and its alias are set, the fully named one takes precedence."
        for alias, full in _ALIASES.items():
            if alias in self.aliases and full not in self.assigned:
                self.vars[full] = self.aliases[alias]

    def assign(self, node: t.Assign) -> None:
        value = self.scalar(self.eval(node.expr), node.expr)
        if isinstance(value, Metric):
            raise syntax_error(f"Cannot assign the sampled variable ${value.name} to {node.name}; "
                               "read it with GetSample()", node.line, node.col)
        key = node.name.lower()
        if key in _READ_ONLY:
            raise syntax_error(f"{node.name} is a read-only service-defined variable", node.line, node.col)
        if key in _ALIASES:
            self._check_target(value, _ALIASES[key], node)
            self.aliases[key] = value
            return
        if key in _WRITABLE:
            name = _WRITABLE[key]
            if name == DEALLOCATION:
                value = self._deallocation(value, node)
            else:
                self._check_target(value, name, node)
            self.vars[name] = value
            self.assigned.add(name)
            return
        if node.name.startswith("$") or node.name not in TIME_INTERVALS:
            self.vars[node.name] = value
            return
        raise syntax_error(f"{node.name} is a constant and cannot be assigned", node.line, node.col)

    @staticmethod
    def _check_target(value: object, name: str, node: t.Node) -> None:
        if not isinstance(value, float | int):
            raise syntax_error(f"{name} must be a double, not {type_name(value)}", node.line, node.col)

    @staticmethod
    def _deallocation(value: object, node: t.Node) -> DeallocationOption:
        text = str(value).lower() if isinstance(value, str) else None
        if text not in DEALLOCATION_OPTIONS:
            raise syntax_error(f"$NodeDeallocationOption must be one of {', '.join(DEALLOCATION_OPTIONS)}; "
                               f"got {format_value(value)}", node.line, node.col)
        return DeallocationOption(text)

    # -- expressions ---------------------------------------------------------------------------------------
    def eval(self, node: t.Node) -> object:
        method = getattr(self, f"eval_{type(node).__name__}")
        return method(node)

    def eval_Number(self, node: t.Number) -> float:  # noqa: N802
        return node.value

    def eval_String(self, node: t.String) -> str:  # noqa: N802
        return node.value

    def eval_Name(self, node: t.Name) -> object:  # noqa: N802
        name = node.name
        key = name.lower()
        if key in _READ_ONLY:
            metric = _READ_ONLY[key]
            return Metric(metric, self.state.history, self.now, self.state.current.get(metric))
        if key in _ALIASES:
            return self.aliases.get(key, self.vars[_ALIASES[key]])
        if key in _WRITABLE:
            return self.vars[_WRITABLE[key]]
        if name in self.vars:
            return self.vars[name]
        if name in TIME_INTERVALS:
            return TIME_INTERVALS[name]
        if name in DEALLOCATION_OPTIONS:
            return DeallocationOption(name)
        raise syntax_error(f"Undefined variable '{name}'", node.line, node.col)

    def scalar(self, value: object, node: t.Node) -> object:
        """Sampled variables read as a double only where they have a current value (node counts)."""
        if isinstance(value, Metric):
            if value.name in CURRENT_VALUE_METRICS:
                current = value.current
                if current is None:
                    current = value.history.latest(value.name, value.now)
                return float(current or 0.0)
            raise syntax_error(f"${value.name} is a set of samples, not a double; read it with "
                               f"${value.name}.GetSample(...)", node.line, node.col)
        return value

    def eval_Unary(self, node: t.Unary) -> object:  # noqa: N802
        value = self.scalar(self.eval(node.operand), node.operand)
        if node.op == "-":
            if isinstance(value, float | int):
                return -float(value)
            if isinstance(value, Interval):
                return Interval(-value.ticks)
        elif isinstance(value, float | int):
            return 1.0 if value == 0 else 0.0
        raise syntax_error(f"Operator '{node.op}' cannot be applied to {type_name(value)}", node.line, node.col)

    def eval_Conditional(self, node: t.Conditional) -> object:  # noqa: N802
        cond = self.scalar(self.eval(node.condition), node.condition)
        if not isinstance(cond, float | int):
            raise syntax_error(f"The condition of '?:' must be a double, not {type_name(cond)}",
                               node.line, node.col)
        branch = node.if_true if cond != 0 else node.if_false
        return self.scalar(self.eval(branch), branch)

    def eval_Binary(self, node: t.Binary) -> object:  # noqa: N802
        left = self.scalar(self.eval(node.left), node.left)
        right = self.scalar(self.eval(node.right), node.right)
        result = binary(node.op, left, right)
        if result is NotImplemented:
            raise syntax_error(f"Operator '{node.op}' is not defined for {type_name(left)} and {type_name(right)}",
                               node.line, node.col)
        return result

    def eval_Call(self, node: t.Call) -> object:  # noqa: N802
        if node.function == "stop":
            if node.args:
                raise syntax_error("stop() takes no arguments", node.line, node.col)
            raise StopEvaluation
        fn = FUNCTIONS.get(node.function)
        if fn is None:
            raise syntax_error(f"Unknown function '{node.function}'", node.line, node.col)
        args = [self.scalar(self.eval(a), a) for a in node.args]
        try:
            return fn(args, self)
        except TypeError as exc:
            raise syntax_error(str(exc), node.line, node.col) from None
        except ValueError as exc:
            raise evaluation_error(str(exc), node.line, node.col) from None

    def eval_Member(self, node: t.Member) -> object:  # noqa: N802
        target = self.eval(node.target)
        if isinstance(target, datetime) and node.member in _TIMESTAMP_MEMBERS:
            if node.member == "weekday":
                return float((target.weekday() + 1) % 7)  # .NET DayOfWeek: Sunday 0, Monday 1 ... Saturday 6
            return float(getattr(target, node.member))
        raise syntax_error(f"{type_name(target)} has no member '{node.member}'", node.line, node.col)

    def eval_MethodCall(self, node: t.MethodCall) -> object:  # noqa: N802
        target = self.eval(node.target)
        if not isinstance(target, Metric):
            raise syntax_error(f"{type_name(target)} has no method '{node.method}'; methods belong to "
                               "service-defined variables such as $PendingTasks", node.line, node.col)
        if node.method not in _METHODS:
            raise syntax_error(f"Unknown method '{node.method}'; expected one of {', '.join(_METHODS)}",
                               node.line, node.col)
        args = [self.scalar(self.eval(a), a) for a in node.args]
        try:
            if node.method == "GetSample":
                return target.get_sample(args)
            if node.method == "GetSamplePercent":
                return target.get_sample_percent(args)
            if args:
                raise TypeError(f"{node.method}() takes no arguments")
            if node.method == "GetSamplePeriod":
                return target.get_sample_period()
            if node.method == "Count":
                return target.count()
            return target.history_begin_time()
        except InsufficientSamples as exc:
            raise FormulaError(INSUFFICIENT_SAMPLES, str(exc), node.line, node.col) from None
        except TypeError as exc:
            raise syntax_error(str(exc), node.line, node.col) from None
        except ValueError as exc:
            raise evaluation_error(str(exc), node.line, node.col) from None


def _is_double(v: object) -> bool:
    return isinstance(v, float | int) and not isinstance(v, DeallocationOption)


def _arith(op: str, a: float, b: float) -> float:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:  # IEEE 754 like the service's doubles
        return math.nan if a == 0 else math.copysign(math.inf, a) * math.copysign(1, b)
    return a / b


_COMPARE = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, "==": lambda a, b: a == b,
    ">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "!=": lambda a, b: a != b,
}


def binary(op: str, a: object, b: object) -> object:
    """The operation table of the docs; NotImplemented for combinations it does not list."""
    if op in ("&&", "||"):
        if _is_double(a) and _is_double(b):
            return 1.0 if (a != 0 and b != 0 if op == "&&" else a != 0 or b != 0) else 0.0
        return NotImplemented
    if op in _COMPARE:
        comparable = ((_is_double(a) and _is_double(b)) or (isinstance(a, str) and isinstance(b, str))
                      or (isinstance(a, datetime) and isinstance(b, datetime))
                      or (isinstance(a, Interval) and isinstance(b, Interval)))
        return (1.0 if _COMPARE[op](a, b) else 0.0) if comparable else NotImplemented
    if _is_double(a) and _is_double(b):
        return _arith(op, float(a), float(b))
    if isinstance(a, DoubleVec) and _is_double(b):
        return DoubleVec(_arith(op, x, float(b)) for x in a)
    if isinstance(a, DoubleVec) and isinstance(b, DoubleVec):
        if len(a) != len(b):
            return NotImplemented
        return DoubleVec(_arith(op, x, y) for x, y in zip(a, b, strict=True))
    if op == "*" and _is_double(a) and isinstance(b, Interval):
        return Interval(round(float(a) * b.ticks))
    if isinstance(a, Interval) and _is_double(b) and op in ("*", "/"):
        if op == "/" and b == 0:
            return NotImplemented
        return Interval(round(b * a.ticks) if op == "*" else round(a.ticks / float(b)))
    if isinstance(a, Interval) and isinstance(b, Interval) and op in ("+", "-"):
        return Interval(a.ticks + b.ticks if op == "+" else a.ticks - b.ticks)
    if op == "+" and isinstance(a, Interval) and isinstance(b, datetime):
        return b + a.to_timedelta()
    if op == "+" and isinstance(a, datetime) and isinstance(b, Interval):
        return a + b.to_timedelta()
    if op == "-" and isinstance(a, datetime) and isinstance(b, datetime):
        return Interval.from_timedelta(a - b)
    return NotImplemented
