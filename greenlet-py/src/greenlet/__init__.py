"""greenlet, in pure Python on tealet's _continuation (a drop-in for the C extension)."""

__all__ = [
    '__version__',
    'GreenletExit',
    'error',
    'getcurrent',
    'greenlet',
    'gettrace',
    'settrace',
]

from ._greenlet import __version__
from ._greenlet import GreenletExit
from ._greenlet import error
from ._greenlet import getcurrent
from ._greenlet import greenlet
from ._greenlet import gettrace
from ._greenlet import settrace
from ._greenlet import GREENLET_USE_CONTEXT_VARS  # noqa: F401
from ._greenlet import GREENLET_USE_GC  # noqa: F401
from ._greenlet import GREENLET_USE_TRACING  # noqa: F401
from ._greenlet import CLOCKS_PER_SEC  # noqa: F401
from ._greenlet import enable_optional_cleanup  # noqa: F401
from ._greenlet import get_clocks_used_doing_optional_cleanup  # noqa: F401
