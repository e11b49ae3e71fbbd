"""The Batch autoscale formula language: parse, evaluate, AutoScaleRun (Autoscaler, CLI, simulator)."""

from .errors import FormulaError
from .evaluator import Evaluation, PoolState, evaluate, format_results
from .parser import MAX_FORMULA_LENGTH, MAX_STATEMENTS, parse
from .samples import SampleHistory


def validate(formula: str) -> dict | None:
    """None when ``formula`` parses; else the AutoScaleRunError dict (syntax error or too long)."""
    try:
        parse(formula)
    except FormulaError as exc:
        return exc.to_wire()
    return None


__all__ = ["MAX_FORMULA_LENGTH", "MAX_STATEMENTS", "Evaluation", "FormulaError", "PoolState", "SampleHistory",
           "evaluate", "format_results", "parse", "validate"]
