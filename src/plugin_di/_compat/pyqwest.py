"""pyqwest's private parts, borrowed by the sync HTTP/1.1 transport.

pyqwest's sync client hands a transport the call's timeout only through a context variable
its native module sets (`get_sync_timeout`, what pyqwest's own WSGI transport reads); it is not
exported from ``pyqwest``. `plugin_di.rpc.h1sync` reads it the same way.
"""

from __future__ import annotations

from plugin_di._compat import VersionRange, installed_version

TESTED = VersionRange("pyqwest", (0, 12), (0, 13), borrowed="_pyqwest.get_sync_timeout")

try:
    from pyqwest._pyqwest import get_sync_timeout
except ImportError as exc:  # a version that moved it
    raise ImportError(TESTED.untested(installed_version(TESTED.distribution)) or str(exc)) from exc

TESTED.check_installed()

__all__ = ["TESTED", "get_sync_timeout"]
