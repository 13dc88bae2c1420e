# tests/compose only: a stand-in for the public postgres image where no image registry is
# reachable. Debian's PostgreSQL behind an entrypoint that honours the same interface the
# compose file uses: POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD(_FILE), the data in
# /var/lib/postgresql/data, pg_isready for the health check.
ARG BASE_IMAGE=debian:sid-slim
FROM ${BASE_IMAGE}
RUN apt-get -o Acquire::Check-Valid-Until=false update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
 && rm -rf /var/lib/apt/lists/* /var/lib/postgresql/*/main /etc/postgresql/*
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
RUN chmod +x /usr/local/bin/postgres-entrypoint
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
