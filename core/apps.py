from django.apps import AppConfig
from django.core import checks


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Site"

    def ready(self):
        from .checks import check_database_pool, check_metrics_token, check_replicas

        checks.register(check_database_pool)
        checks.register(check_replicas)
        checks.register(check_metrics_token)
