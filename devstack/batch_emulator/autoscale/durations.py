"""ISO-8601 durations (PT5M, PT30S, P1D) as Batch uses them for autoScaleEvaluationInterval and the CLI flags."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
                       r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")


def parse_duration(text: str, setting: str = "autoScaleEvaluationInterval") -> timedelta:
    """ISO-8601 duration -> timedelta; ValueError naming ``setting`` and the expected form otherwise."""
    stripped = text.strip() if isinstance(text, str) else ""
    m = _DURATION.match(stripped)
    if not m or stripped in ("P", "PT") or stripped.endswith("T"):
        raise ValueError(f"{setting}: '{text}' is not an ISO-8601 duration such as PT5M, PT30S or P1D")
    parts = {k: float(v) if v else 0.0 for k, v in m.groupdict().items()}
    return timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])
