# One image for the three Django roles; docker-compose.yml picks the role with `command:`.
#   web:    gunicorn kyphofollow.wsgi (the default CMD)
#   worker: celery -A kyphofollow worker --loglevel=INFO
#   beat:   celery -A kyphofollow beat --loglevel=INFO --schedule /tmp/celerybeat-schedule
# No secret is baked in: SECRET_KEY, DATABASE_URL, ... come from the environment at run time.
FROM python:3.11-slim

# PYTHONPATH: every process (gunicorn, celery, manage.py, health checks) imports the project from
# /app, so BASE_DIR is the same for all.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 1000 kyphofollow \
    && useradd --system --uid 1000 --gid kyphofollow --home-dir /app --shell /usr/sbin/nologin kyphofollow

WORKDIR /app

# The whole tree (.dockerignore keeps out .venv, var, .env, ...): apps carry templates and data files
# (patients/templates, patients/protocols) that `pip install .` does not put in site-packages; the
# install takes every dependency from the hashed lock file requirements/run.txt, then the project
# without resolving anything. Files stay root-owned and read-only.
COPY . .
RUN pip install --require-hashes -r requirements/run.txt && pip install --no-deps .

# Static files are collected into /app/staticfiles at build time.
# Production serves them with WhiteNoise's CompressedManifestStaticFilesStorage, which needs the
# manifest (staticfiles.json) that only a production-mode collectstatic writes: collected with
# DJANGO_ENV unset, every admin page fails at run time with "Missing staticfiles manifest entry".
# The SECRET_KEY/ALLOWED_HOSTS below exist only for this one command and are not kept in the image.
RUN DJANGO_ENV=production SECRET_KEY=collectstatic-build-only-not-a-secret ALLOWED_HOSTS=localhost \
        python manage.py collectstatic --noinput \
    && mkdir -p /app/var \
    && chown -R kyphofollow:kyphofollow /app/var

USER kyphofollow

EXPOSE 8000
# gunicorn.conf.py (read from /app) keeps the access log off: Django logs route patterns, never paths.
CMD ["gunicorn", "kyphofollow.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
