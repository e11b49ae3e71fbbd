"""Errors of the autoscale formula language, shaped like the Batch service's AutoScaleRunError.

The service reports formula problems as ``{code, message, values: [{name: "Message", value: "Line L, Col C: ..."}]}``;
every error here carries a source position so that the same shape can be produced for parse, type and sample
errors alike.
"""

from __future__ import annotations

from dataclasses import dataclass

SYNTAX_ERROR = "AutoScalingFormulaSyntaxError"
TOO_LONG = "AutoScalingFormulaTooLong"
INSUFFICIENT_SAMPLES = "InsufficientSampleData"
# Emulator-specific: the service documents no code for run-time failures other than missing samples.
EVALUATION_ERROR = "AutoScalingFormulaEvaluationError"

MESSAGES = {
    SYNTAX_ERROR: "The specified autoscale formula has a syntax error",
    TOO_LONG: "The specified autoscale formula is too long. The maximum length is 8192 characters",
    INSUFFICIENT_SAMPLES: "Autoscale evaluation failed due to insufficient sample data",
    EVALUATION_ERROR: "Autoscale evaluation failed",
}


@dataclass
class FormulaError(Exception):
    """A formula problem at a 1-based line and column (``line == 0`` when it concerns the whole formula)."""

    code: str
    detail: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        return self.value

    @property
    def value(self) -> str:
        if self.line:
            return f"Line {self.line}, Col {self.col}: {self.detail}"
        return self.detail

    def to_wire(self) -> dict:
        """The AutoScaleRunError dict, as the service puts it in ``autoScaleRun.error``."""
        return {
            "code": self.code,
            "message": MESSAGES.get(self.code, "Autoscale evaluation failed"),
            "values": [{"name": "Message", "value": self.value}],
        }


def syntax_error(detail: str, line: int, col: int) -> FormulaError:
    return FormulaError(SYNTAX_ERROR, detail, line, col)


def evaluation_error(detail: str, line: int, col: int) -> FormulaError:
    return FormulaError(EVALUATION_ERROR, detail, line, col)


class StopEvaluation(Exception):  # noqa: N818 - control flow, not an error
    """Raised by ``stop()``: evaluation ends and the values assigned so far are the result."""
