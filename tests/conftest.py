"""Shared test setup: hypothesis profiles and markers.

Profiles: ``dev`` (fast, random) and ``ci`` (derandomized, no deadline, bounded examples). ``ci`` is chosen when
``CI`` is set (as in ``bash .ci/run``) unless ``LEPTON_HYPOTHESIS_PROFILE`` names one explicitly.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile(
    "ci",
    max_examples=30,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def _profile_name() -> str:
    explicit = os.environ.get("LEPTON_HYPOTHESIS_PROFILE")
    if explicit:
        return explicit
    ci = os.environ.get("CI", "").strip().lower()
    return "ci" if ci not in ("", "0", "false", "no") else "dev"


settings.load_profile(_profile_name())


def pytest_report_header(config: object) -> str:
    return f"hypothesis profile: {settings.get_current_profile_name()}"
