from django.apps import AppConfig
from django.core import checks


class SearchConfig(AppConfig):
    name = "search"
    verbose_name = "Search"

    def ready(self):
        from .checks import check_search_settings  # it reads selectors, which import the models

        checks.register(check_search_settings)
