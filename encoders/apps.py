from django.apps import AppConfig
from django.core import checks


class EncodersConfig(AppConfig):
    name = "encoders"
    verbose_name = "Encoders"

    def ready(self):
        from .checks import check_encoder_settings

        checks.register(check_encoder_settings)
