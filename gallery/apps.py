from django.apps import AppConfig
from django.core import checks


class GalleryConfig(AppConfig):
    name = "gallery"
    verbose_name = "Gallery"

    def ready(self):
        from .checks import check_gallery_settings

        checks.register(check_gallery_settings)
