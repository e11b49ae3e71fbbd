"""The Azure Batch autoscale formula language, evaluated locally.

``parse`` turns formula text into a syntax tree (raising FormulaError with line and column), ``evaluate`` runs it
against a PoolState (sample history + current values) and returns an Evaluation whose ``to_wire()`` is the
service's AutoScaleRun. The emulator's Autoscaler, the ``eventbatch autoscale`` CLI and the simulator use these.
"""

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
