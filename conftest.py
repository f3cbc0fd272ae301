"""flowgate's own test run (this repository's ``tests``, ``properties`` and ``scenarios``).

Hypothesis profiles live here, not in the ``pytest11`` plugin (``fixtures.plugin``): the plugin
loads in every pytest run of an environment where flowgate is installed, and a project that
uses flowgate's fixtures keeps its own Hypothesis profiles and settings. This file is only read
when pytest collects inside this checkout.

Profiles (``HYPOTHESIS_PROFILE``, which nox sets to ``ci``, or ``--hypothesis-profile``):

* ``dev`` (default) -- 25 examples, no deadline: a quick local run;
* ``ci`` -- 60 examples, the ``too_slow`` health check off, failing examples printed as blobs;
* ``nightly`` -- 1000 examples, otherwise as ``ci``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile(
    "nightly", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
