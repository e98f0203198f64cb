"""The web dashboard: runs, their timelines, live, and the operator's actions.

Needs the ``dashboard`` extra (``pip install 'pyworkflow[dashboard]'``: Starlette, Jinja2,
Hypercorn, sse-starlette). Run it with ``pyworkflow dashboard --storage ...``, or mount
:func:`create_app` in any ASGI server.
"""

from .. import _public
from ._app import create_app as create_app
from ._options import DashboardOptions as DashboardOptions
from ._options import check_bind as check_bind
from ._serve import serve as serve

__all__ = ["DashboardOptions", "check_bind", "create_app", "serve"]

_public.publish(globals(), __all__)
