"""Bad input that would otherwise reach a 500: answered 400 before any view runs (docs/api.md, "Errors")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest, HttpResponseBadRequest, QueryDict
from django.http.response import HttpResponseBase

NUL = "\x00"


def cookies_carry_nul(cookies: dict[str, str]) -> bool:
    return any(NUL in name or NUL in value for name, value in cookies.items())


def query_carries_nul(query: QueryDict) -> bool:
    return any(NUL in name or any(NUL in value for value in values) for name, values in query.lists())


def nul_refused(where: str) -> HttpResponseBadRequest:
    return HttpResponseBadRequest(f"A NUL character (%00) in {where} is refused.\n", content_type="text/plain")


class BadInputMiddleware:
    """Refuses, with a 400, what Django or PostgreSQL would have failed on with a 500:

    - **A NUL in a cookie.** PostgreSQL cannot hold a NUL in a text value and psycopg raises
      ``DataError`` on one; Django decodes ``sessionid="…\\000…"`` (a quoted cookie's octal escape) to a NUL
      and looks the session up, so any anonymous request could end in a 500. Header values cannot carry a
      raw NUL: daphne (Twisted) answers those 400 itself.
    - **A NUL in the admin's query string.** The admin's change lists filter their queryset with the
      query's parameters as they come (``/admin/assets/asset/?symbol=%00``). The API is not concerned: it
      validates its parameters and names the one at fault (``{"ordering": ["Null characters are not
      allowed."]}``), and the admin's forms reject a NUL with a form error.
    - **More query parameters than ``DATA_UPLOAD_MAX_NUMBER_FIELDS``.** Django answers 400 already, but with
      ``DEBUG`` its error page reads ``request.GET`` again, which raises again: a 500 (Django marks only
      ``request.POST`` as failed). The query is read here, once, and an empty one left for the error page.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if cookies_carry_nul(request.COOKIES):
            return nul_refused("a cookie")
        try:
            request.GET  # noqa: B018 - parses the query string
        except TooManyFieldsSent:
            request.GET = cast(Any, QueryDict())
            raise
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: Any
    ) -> HttpResponseBase | None:
        match = request.resolver_match
        if match is not None and "admin" in match.app_names and query_carries_nul(request.GET):
            return nul_refused("the admin's query string")
        return None
