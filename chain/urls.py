from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from chain import views

urlpatterns = [
    path("", views.api_root, name="api-root"),
    path("health/", views.health, name="api-health"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
