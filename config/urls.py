from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path

from core.metrics import metrics
from core.views import media
from search.api import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    # 404 unless METRICS_ENABLED; staff or METRICS_TOKEN only (core/metrics.py).
    path("metrics", metrics, name="metrics"),
    path("", include("search.urls")),
]

if settings.SERVE_MEDIA:
    urlpatterns += [
        re_path(
            rf"^{settings.MEDIA_URL.lstrip('/')}(?P<path>.*)$",
            media,
            name="media",
        ),
    ]

handler500 = "core.views.server_error"
