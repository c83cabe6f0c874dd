from django.apps import AppConfig


class EncodersConfig(AppConfig):
    name = "encoders"
    verbose_name = "Encoders"
