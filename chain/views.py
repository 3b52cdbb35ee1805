from rest_framework import status
from rest_framework.decorators import api_view, permission_classes, throttle_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse

from chain.health import health_report


@api_view(["GET"])
def api_root(request: Request) -> Response:
    """Where to go from here."""
    return Response(
        {
            "health": reverse("api-health", request=request),
            "schema": reverse("api-schema", request=request),
            "docs": reverse("api-docs", request=request),
        }
    )


@api_view(["GET"])
@permission_classes([AllowAny])
@throttle_classes([])
def health(request: Request) -> Response:
    """200 when Redis and the database answer, else 503 with the reasons."""
    report = health_report()
    code = status.HTTP_200_OK if report.healthy else status.HTTP_503_SERVICE_UNAVAILABLE
    return Response({"healthy": report.healthy, "problems": report.problems}, status=code)
