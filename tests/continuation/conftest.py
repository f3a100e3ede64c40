import platform

import pytest

IS_PYPY = platform.python_implementation() == "PyPy"

# Tests of tealet extensions (not in PyPy's reference _continuation) skip on PyPy.
tealet_only = pytest.mark.skipif(IS_PYPY, reason="tealet extension, not in PyPy's _continuation")
