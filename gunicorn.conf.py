"""gunicorn settings, read from the working directory by `gunicorn kyphofollow.wsgi` (Dockerfile, compose).

No access log here: gunicorn's would write each request's full path and query string, i.e. live check-in
and acknowledge tokens and MRNs. Django's `kyphofollow.access` logger writes one line per request
instead, with the route pattern only (kyphofollow/middleware.py). The error log goes to stderr.
"""

accesslog = None
errorlog = "-"
loglevel = "info"
