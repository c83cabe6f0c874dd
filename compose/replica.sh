#!/bin/sh
# The replica service (compose profile "replica"): on its first start, copy the primary with
# pg_basebackup -R (which writes standby.signal and primary_conninfo), then run as a hot standby
# streaming from it. Later starts find the copy and only run postgres (with any arguments given).
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    export PGPASSWORD="${REPLICATION_PASSWORD:-replication}"
    until pg_basebackup --host="${PRIMARY_HOST:-db}" --port="${PRIMARY_PORT:-5432}" --username=replicator \
            --pgdata="$PGDATA" --write-recovery-conf --wal-method=stream --checkpoint=fast; do
        echo "replica: the primary is not ready for a base backup yet; trying again in 2 s" >&2
        sleep 2
    done
    chmod 0700 "$PGDATA"
fi
exec postgres "$@"
