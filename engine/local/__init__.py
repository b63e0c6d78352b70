"""The embedded AWS: moto's server on loopback behind glam's fidelity and fault proxy.

It lives in the optional ``local`` extra: importing this package without moto installed raises
``LocalAwsError`` saying how to install it.

    engine.local.aws         LocalAws (async), LocalAwsThread (sync), MotoServer
    engine.local.proxy       the aiohttp proxy and its control endpoint (/_glam/...)
    engine.local.fidelity    Fidelity switches and the real-Lambda rules
    engine.local.faults      the fault spec language and the seeded injector
    engine.local.journal     the journal of calls and its invariant checks
    engine.local.operations  naming the AWS operation behind an HTTP request
    engine.local.account     the demo account (role, bucket, queue, alarms, ALB, HTTP API)
"""

from __future__ import annotations

import importlib.util

from engine.errors import LocalAwsError

if importlib.util.find_spec("moto") is None:  # pragma: no cover - depends on the install
    raise LocalAwsError(
        "the embedded AWS needs moto, which is not installed",
        hint="pip install 'glam-gitops[local]'",
    )

from engine.local.aws import Credentials, LocalAws, LocalAwsThread, MotoServer
from engine.local.faults import FaultSpec, parse_faults
from engine.local.fidelity import Fidelity
from engine.local.journal import Journal, JournalEntry

__all__ = [
    "Credentials",
    "FaultSpec",
    "Fidelity",
    "Journal",
    "JournalEntry",
    "LocalAws",
    "LocalAwsThread",
    "MotoServer",
    "parse_faults",
]
