# SPDX-License-Identifier: Apache-2.0
"""The corpus reuses the integration suite's fixtures (session, ctx) and harness."""

import importlib.util
import sys
from pathlib import Path

_IT = Path(__file__).resolve().parents[1] / "integration"
sys.path.insert(0, str(_IT))
_spec = importlib.util.spec_from_file_location("husk_it_conftest", _IT / "conftest.py")
it = importlib.util.module_from_spec(_spec)
sys.modules["husk_it_conftest"] = it
_spec.loader.exec_module(it)

session = it.session
pytest_configure = it.pytest_configure
# What serve_harness and the tests import from "conftest".
HUSK, Ctx, wait_for, REPO = it.HUSK, it.Ctx, it.wait_for, it.REPO
