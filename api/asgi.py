"""The ASGI application of a ``hengxin serve`` worker process, built from ``HENGXIN_CONFIG``.

With ``[server] workers`` above one, the supervisor (api/serve.py) starts that many processes and each calls
:func:`worker_app`: it loads the configuration file named by ``HENGXIN_CONFIG`` (or the default one) and builds
its own app, which opens its own platform (keys loaded once per process, its own database pool) at start-up.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from api.app import create_app
from core.config import CONFIG_ENV, load_settings
from core.logging import configure_logging


def worker_app() -> FastAPI:
    settings = load_settings(os.environ.get(CONFIG_ENV))
    configure_logging(settings.logging.level, settings.logging.format)
    return create_app(settings)
