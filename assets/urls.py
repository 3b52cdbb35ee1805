from django.urls import path

from assets.views import AssetViewSet

# Each route answers with and without its trailing slash, like the chain's routes.
asset_list = AssetViewSet.as_view({"get": "list", "post": "create"})
asset_detail = AssetViewSet.as_view(
    {"get": "retrieve", "put": "update", "patch": "partial_update", "delete": "destroy"}
)
asset_toggle = AssetViewSet.as_view({"post": "toggle"})

urlpatterns = [
    path("assets/", asset_list, name="api-assets"),
    path("assets", asset_list),
    path("assets/<str:symbol>/", asset_detail, name="api-asset"),
    path("assets/<str:symbol>", asset_detail),
    path("assets/<str:symbol>/toggle/", asset_toggle, name="api-asset-toggle"),
    path("assets/<str:symbol>/toggle", asset_toggle),
]
