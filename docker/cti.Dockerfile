# The CTI server, with what it runs besides Python: espeak-ng and sox (the IVR's prompts and the
# announcements' audio; Debian sid's espeak-ng reads Mandarin, bookworm's does not), Chromium and
# CJK fonts (PDF reports), pg_dump (cti backup).
# BASE_IMAGE: any Debian sid image (the public debian:sid-slim; tests/compose passes one imported
# from a debootstrap root where no image registry is reachable).
ARG BASE_IMAGE=debian:sid-slim
FROM ${BASE_IMAGE}
ARG PYTHON=python3.13
RUN apt-get -o Acquire::Check-Valid-Until=false update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ${PYTHON} ${PYTHON}-venv ca-certificates tzdata espeak-ng sox libsox-fmt-all \
      chromium fonts-noto-cjk postgresql-client \
 && rm -rf /var/lib/apt/lists/*
# A site whose HTTPS goes through an inspecting proxy passes that proxy's CA certificates here
# (PEM text; public data) so that pip can reach the package index.
ARG EXTRA_CA_CERTS=""
RUN if [ -n "$EXTRA_CA_CERTS" ]; then \
      printf '%s\n' "$EXTRA_CA_CERTS" >/usr/local/share/ca-certificates/site-extra.crt \
      && update-ca-certificates; fi \
 && ${PYTHON} -m venv /opt/cti
ENV PATH=/opt/cti/bin:$PATH PYTHONUNBUFFERED=1 PIP_CERT=/etc/ssl/certs/ca-certificates.crt
WORKDIR /app
# The pinned dependencies first (a layer of their own: a change of code does not reinstall them).
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" >/tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt
COPY README.md ./
COPY cti/ cti/
COPY desk/ desk/
COPY reports/ reports/
# Editable: the templates, report cards and migrations are read from /app as in a checkout.
RUN pip install --no-cache-dir --no-deps -e . && cti --help >/dev/null
COPY docker/cti-entrypoint.sh /usr/local/bin/cti-entrypoint
RUN chmod +x /usr/local/bin/cti-entrypoint
# secret.key, the report archive (and SQLite when no CTI_DATABASE_URL): the cti-data volume.
ENV CTI_DATA_DIR=/var/lib/cti/data \
    CTI_MEDIA_DIR=/var/lib/cti/media CTI_ASTERISK_MEDIA_DIR=/var/lib/cti/media \
    CTI_PROMPTS_DIR=/var/lib/cti/prompts \
    CTI_HTTP_HOST=0.0.0.0 CTI_AGI_HOST=0.0.0.0
EXPOSE 8080 4573
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
  CMD python -c "import os,sys,urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CTI_HTTP_PORT', '8080'), timeout=5).status != 200)"
ENTRYPOINT ["/usr/local/bin/cti-entrypoint"]
CMD ["cti", "serve"]
