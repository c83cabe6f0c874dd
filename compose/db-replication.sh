#!/bin/sh
# Runs once, when the db service initialises an empty data volume (/docker-entrypoint-initdb.d):
# a role the replica (compose profile "replica") connects as to stream the WAL, and the pg_hba.conf
# line that lets it (pg_hba's "all" does not cover replication connections).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v password="${REPLICATION_PASSWORD:-replication}" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'password';
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
