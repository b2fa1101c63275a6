"""JSON text that every parser reads: a non-finite number is written as ``null``.

Python's ``json`` writes ``NaN`` and ``Infinity``, which are not JSON; a
results or statistics file holding them fails in strict readers (``jq``,
JavaScript, ``json.loads(..., parse_constant=...)`` checks).
"""

from __future__ import annotations

import json
import math


def finite(value):
    """``value`` with every non-finite float (also inside lists, tuples, dicts) as None.

    Examples
    --------
    >>> finite({"a": [1.0, float("nan")], "b": (float("inf"),)})
    {'a': [1.0, None], 'b': [None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:
        return finite(value.item())  # a numpy scalar
    return value


def json_text(value) -> str:
    """Strict JSON of ``value`` (indented), non-finite numbers as ``null``.

    Examples
    --------
    >>> print(json_text({"x": float("nan")}))
    {
      "x": null
    }
    """
    return json.dumps(finite(value), indent=2, allow_nan=False)
