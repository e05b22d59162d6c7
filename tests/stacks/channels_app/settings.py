"""A Django Channels app as real ones are set up: Origin validator, auth middleware, a route
with a trailing slash and a login-only route. Served by daphne in the tests."""

SECRET_KEY = "sentinel-ws-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "tests.stacks.channels_app.urls"
ASGI_APPLICATION = "tests.stacks.channels_app.asgi.application"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
USE_TZ = True
