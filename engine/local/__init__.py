"""The embedded AWS: moto's server on loopback behind glam's fidelity and fault proxy.

It lives in the optional ``local`` extra: importing this package without moto installed raises
``LocalAwsError`` saying how to install it.

    engine.local.aws         LocalAws (async), LocalAwsThread (sync), MotoServer
    engine.local.proxy       the aiohttp proxy in front of moto
    engine.local.control     its control endpoint (/_glam/...) and the Host/Origin guard
    engine.local.clock       the one movable clock every timer of the proxy reads
    engine.local.accounts    the account a call is made in, from its access key
    engine.local.fidelity    Fidelity switches and the real-Lambda rules
    engine.local.faults      the fault spec language and the seeded injector
    engine.local.refusals    AWS-shaped errors in each service's protocol
    engine.local.journal     the journal of calls and its invariant checks
    engine.local.operations  naming the AWS operation behind an HTTP request
    engine.local.account     the demo account (role, bucket, queue, alarms, ALB, HTTP API),
                             in the engine's account or another one
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
from engine.local.clock import MovableClock
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
    "MovableClock",
    "parse_faults",
]
