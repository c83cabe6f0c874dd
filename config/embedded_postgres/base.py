"""The PostgreSQL backend, with the embedded server started on the first connection."""

from pathlib import Path

from django.db.backends.postgresql import base

from .server import ensure_server


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        options = self.settings_dict.get("OPTIONS", {})
        params.update(ensure_server(Path(options["pgdata"]), self.settings_dict["NAME"]))
        params.pop("pgdata", None)
        return params
