#!/usr/bin/env bash
# Runs once, when the Postgres volume is new (/docker-entrypoint-initdb.d): one database
# per service, owned by POSTGRES_USER. POSTGRES_DATABASES is "coordinator bridge org1 ...".
set -euo pipefail

for db in ${POSTGRES_DATABASES:-}; do
    if [[ ! "$db" =~ ^[a-z][a-z0-9_]*$ ]]; then
        echo "init-databases: bad database name '$db'" >&2
        exit 1
    fi
    echo "init-databases: creating ${db}"
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
        -c "CREATE DATABASE \"${db}\" OWNER \"${POSTGRES_USER}\""
done
