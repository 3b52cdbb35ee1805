from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path

from assets.views import TokenView
from optionsite.login_throttle import login_throttled

# The login forms, ahead of the includes that define them, so that a throttled attempt gets no password check.
login_forms = [
    path("admin/login/", login_throttled(admin.site.login)),
    path("api-auth/login/", login_throttled(LoginView.as_view(template_name="rest_framework/login.html"))),
]

urlpatterns = [
    *login_forms,
    path("admin/", admin.site.urls),
    path("api/", include("assets.urls")),
    path("api/token/", TokenView.as_view(), name="api-token"),
    path("api/", include("chain.urls")),
    path("api-auth/", include("rest_framework.urls")),
    path("", include("chain.page_urls")),
]
