from collections.abc import Callable

from django.http import HttpResponseBase
from django.urls import URLPattern, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from chain import views


def with_and_without_slash(route: str, view: Callable[..., HttpResponseBase], name: str) -> list[URLPattern]:
    """``route/`` and ``route`` both answer: seed scripts call ``/api/options/BTC`` and a redirect would lose them."""
    return [path(f"{route}/", view, name=name), path(route, view)]


urlpatterns = [
    path("", views.api_root, name="api-root"),
    *with_and_without_slash("options/<str:asset>", views.OptionsView.as_view(), "api-options"),
    *with_and_without_slash("chain/<str:asset>", views.ChainView.as_view(), "api-chain"),
    *with_and_without_slash("expiries/<str:asset>", views.ExpiriesView.as_view(), "api-expiries"),
    *with_and_without_slash("strikes/<str:asset>", views.StrikesView.as_view(), "api-strikes"),
    *with_and_without_slash("summary/<str:asset>", views.SummaryView.as_view(), "api-summary"),
    *with_and_without_slash("analytics/<str:asset>", views.AssetAnalyticsView.as_view(), "api-analytics"),
    *with_and_without_slash(
        "analytics/<str:asset>/<str:expiry>", views.ExpiryAnalyticsView.as_view(), "api-analytics-expiry"
    ),
    *with_and_without_slash("stats", views.StatsView.as_view(), "api-stats"),
    *with_and_without_slash("health", views.health, "api-health"),
    *with_and_without_slash("health/live", views.health_live, "api-health-live"),
    *with_and_without_slash("health/ready", views.health_ready, "api-health-ready"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
