from django.contrib import admin
from django.urls import include, path

from assets.views import TokenView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("assets.urls")),
    path("api/token/", TokenView.as_view(), name="api-token"),
    path("api/", include("chain.urls")),
    path("api-auth/", include("rest_framework.urls")),
    path("", include("chain.page_urls")),
]
