# intake: the worker (`intake run`) in a container.
#
#   docker build -t intake .
#   docker run -d --name intake -v intake-data:/data -v intake-config:/config intake
#
# Settings come from /config/intake.toml (a named volume starts with the shipped example and
# rules; a bind mount brings your own) and INTAKE_<SECTION>_<KEY> variables. The SQLite
# database, the local Maildir and the file outbox default to /data.

# -- build: a wheel of intake and of every dependency ------------------------------------------
FROM python:3.11-slim-bookworm AS build

WORKDIR /src
COPY pyproject.toml README.md ./
COPY intake ./intake
# The postgres extra (psycopg 3) lets database.url name a PostgreSQL server.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres]"

# -- run: the wheels installed into a clean image, as a non-root user ---------------------------
FROM python:3.11-slim-bookworm

# No apt packages: every dependency (matplotlib, psycopg's binary extra) ships as a wheel.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib

RUN groupadd --system --gid 10001 intake \
    && useradd --system --uid 10001 --gid intake --home-dir /data --no-create-home intake \
    && mkdir -p /data/mail/new /data/mail/cur /data/mail/tmp /config \
    && chown -R intake:intake /data /config

COPY --from=build /wheels /wheels
# The wheel file itself pins intake; --no-index keeps every dependency to the built wheels.
RUN pip install --no-cache-dir --no-index --find-links=/wheels \
        "$(echo /wheels/intake-*.whl)[postgres]" \
    && rm -rf /wheels

# The templates are not inside the package: they sit beside it, for admins to copy and edit.
COPY templates /opt/intake/templates
COPY --chown=intake:intake config/intake.toml config/rules.toml /config/

ENV INTAKE_CONFIG=/config/intake.toml \
    INTAKE_CONSULTATION_TEMPLATES=/opt/intake/templates \
    INTAKE_MAILBOX_URL=maildir:/data/mail \
    INTAKE_DATABASE_URL=sqlite:////data/intake.db \
    INTAKE_OUTGOING_URL=file:/data/outbox

USER 10001:10001
WORKDIR /data
VOLUME ["/data", "/config"]

# Unhealthy when the last good poll is older than worker.stale_poll_seconds, outbox mail
# failed or quarantined mail waits for a look (exit 1, each problem printed).
HEALTHCHECK --interval=60s --timeout=20s --start-period=60s --retries=3 \
    CMD ["intake", "status", "--check"]

# SIGTERM (docker stop) finishes the message in hand and exits 0 within seconds.
STOPSIGNAL SIGTERM
CMD ["intake", "run"]
