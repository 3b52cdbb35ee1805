"""Routes of the browser pages (the API's are in ``chain.urls``, the WebSocket's in ``chain.routing``)."""

from django.urls import path

from chain import pages

urlpatterns = [
    path("", pages.home, name="chain-home"),
    path("chain/indexes.json", pages.asset_indexes, name="chain-indexes"),
    path("chain/<str:asset>/", pages.chain_page, name="chain-page"),
]
