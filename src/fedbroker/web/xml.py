"""AWS Query protocol XML: responses and ``ErrorResponse`` documents.

Results are plain structures whose keys are AWS member names; lists become ``member``
elements, maps (:class:`~fedbroker.iam.shapes.XmlMap`) ``entry`` elements with a ``key`` and a
``value``, datetimes ISO 8601 in UTC, booleans ``true``/``false``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from fedbroker.iam.shapes import XmlMap

IAM_NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/"


def _render(value: Any, out: list[str]) -> None:
    if isinstance(value, XmlMap):
        for key, item in value.items():
            if item is None:
                continue
            out.append(f"<entry><key>{escape(str(key))}</key><value>")
            _render(item, out)
            out.append("</value></entry>")
    elif isinstance(value, dict):
        for key, item in value.items():
            if item is None:
                continue
            out.append(f"<{key}>")
            _render(item, out)
            out.append(f"</{key}>")
    elif isinstance(value, list):
        for item in value:
            out.append("<member>")
            _render(item, out)
            out.append("</member>")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, datetime):
        out.append(value.strftime("%Y-%m-%dT%H:%M:%SZ"))
    else:
        out.append(escape(str(value)))


def response(
    action: str, result: dict[str, Any], request_id: str, namespace: str = IAM_NAMESPACE
) -> str:
    # The Result element is always there, empty or not: botocore requires it for operations
    # whose output shape is empty but wrapped (UpdateRole), and ignores it elsewhere.
    out = [f'<{action}Response xmlns="{namespace}">', f"<{action}Result>"]
    _render(result, out)
    out.append(f"</{action}Result>")
    out.append(f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>")
    out.append(f"</{action}Response>")
    return "".join(out)


def error(
    code: str, message: str, request_id: str, sender: bool = True, namespace: str = IAM_NAMESPACE
) -> str:
    kind = "Sender" if sender else "Receiver"
    return (
        f'<ErrorResponse xmlns="{namespace}"><Error><Type>{kind}</Type>'
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
