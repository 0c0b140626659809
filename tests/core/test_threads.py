"""The numeric libraries' thread counts, said before they load (``modelcapsule.core.threads``).

Each case runs in a fresh interpreter: this one has long imported numpy."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from modelcapsule.core.threads import NUMERIC_THREAD_VARIABLES


def _fresh(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in NUMERIC_THREAD_VARIABLES}
    result = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                            timeout=120, check=True)
    return result.stdout.strip()


SAID_FIRST = """
from modelcapsule.core.threads import default_numeric_threads, limited_before_load
default_numeric_threads(1)
import numpy
print(limited_before_load(1), limited_before_load(2))
"""


def test_variables_said_before_numpy_loads_need_no_shrinking_afterwards() -> None:
    assert _fresh(SAID_FIRST) == "True False"


def test_variables_said_after_numpy_loaded_do_not_count() -> None:
    assert _fresh("import numpy\n" + SAID_FIRST) == "False False"


@pytest.mark.parametrize("variable", NUMERIC_THREAD_VARIABLES)
def test_a_users_own_count_that_differs_does_not_count(variable: str) -> None:
    # the server shrinks the pools to what it was asked for through threadpoolctl, as before
    assert _fresh(SAID_FIRST, **{variable: "4"}) == "False False"


def test_a_server_started_in_time_never_imports_threadpoolctl() -> None:
    code = """
import sys
from modelcapsule.core.threads import default_numeric_threads
default_numeric_threads(1)
from modelcapsule.serving.server import limit_numeric_threads
limit_numeric_threads(1)
print("threadpoolctl" in sys.modules)
"""
    assert _fresh(code) == "False"
