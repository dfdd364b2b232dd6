"""NGSI-LD errors as RFC 7807 problem details (ETSI GS CIM 009, clause 5.5.2)."""

from __future__ import annotations

from typing import Any

ERROR_BASE = "https://uri.etsi.org/ngsi-ld/errors/"
PROBLEM_MEDIA = "application/problem+json"


def accept_ranges(accept: str) -> list[tuple[str, float]]:
    """The media ranges of an ``Accept`` header with their quality (a malformed q is 0)."""
    out = []
    for part in accept.split(","):
        media, *params = part.split(";")
        q = 1.0
        for param in params:
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        out.append((media.strip().lower(), q))
    return out


def problem_media(accept: str | None) -> str:
    """The media type of an error body for a request's Accept: ``application/problem+json``
    (RFC 9457) unless the client accepts ``application/json`` and not that, as NGSI-LD
    clients that ask for JSON do (ETSI's suite, 040_02): the same body, labelled as the client
    asked. An Accept that names neither is disregarded, as RFC 9110 (12.5.1) lets an error do."""
    wanted = {media for media, q in accept_ranges(accept or "") if q > 0}
    if not accept or wanted & {PROBLEM_MEDIA, "application/*", "*/*"}:
        return PROBLEM_MEDIA
    return "application/json" if "application/json" in wanted else PROBLEM_MEDIA


class NgsiLdError(Exception):
    """An error the API reports as a problem-details body with the given HTTP status."""

    type_name = "InternalError"
    status = 500
    title = "Internal error"

    def __init__(self, detail: str, *, status: int | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        self.extra = extra

    @property
    def type_uri(self) -> str:
        return ERROR_BASE + self.type_name

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequestData(NgsiLdError):
    type_name = "BadRequestData"
    status = 400
    title = "Bad request data"


class InvalidRequest(NgsiLdError):
    type_name = "InvalidRequest"
    status = 400
    title = "Invalid request"


class ResourceNotFound(NgsiLdError):
    type_name = "ResourceNotFound"
    status = 404
    title = "Resource not found"


class AlreadyExists(NgsiLdError):
    type_name = "AlreadyExists"
    status = 409
    title = "Already exists"


class OperationNotSupported(NgsiLdError):
    type_name = "OperationNotSupported"
    status = 422
    title = "Operation not supported"


class TooComplexQuery(NgsiLdError):
    type_name = "TooComplexQuery"
    status = 403
    title = "Too complex query"


class TooManyResults(NgsiLdError):
    type_name = "TooManyResults"
    status = 403
    title = "Too many results"


class LdContextNotAvailable(NgsiLdError):
    type_name = "LdContextNotAvailable"
    status = 503
    title = "JSON-LD @context not available"


class NonexistentTenant(NgsiLdError):
    type_name = "NonexistentTenant"
    status = 404
    title = "Nonexistent tenant"


class PayloadTooLarge(NgsiLdError):
    """Body over the configured size limit (HTTP 413); typed BadRequestData as NGSI-LD has no own type."""

    type_name = "BadRequestData"
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(NgsiLdError):
    type_name = "InvalidRequest"
    status = 415
    title = "Unsupported media type"


class NotAcceptable(NgsiLdError):
    type_name = "InvalidRequest"
    status = 406
    title = "Not acceptable"


class Forbidden(NgsiLdError):
    """An access check refused (:mod:`cityos.hub.access`; the rules are security's)."""

    status = 403
    title = "Forbidden"

    @property
    def type_uri(self) -> str:  # NGSI-LD defines no 403 type
        return "urn:cityos:errors:Forbidden"
