"""Which account a call is made in: the account of the access key it was signed with.

moto keeps one set of resources per account and puts a call in the account its access key
belongs to: credentials from ``sts:AssumeRole`` into ``arn:aws:iam::111111111111:role/x``
(moto lets any role be assumed, in any account) act in 111111111111, the keys of an IAM user
in that user's account, and any key moto did not issue (``testing``, the dummies) in the
default account 123456789012. A request header ``x-moto-account-id`` overrides all of it.

The proxy needs the same answer for the journal and to keep the fidelity rules and the quota
per account. It asks moto itself, once per key: ``sts:GetCallerIdentity`` signed with the key
answers the key's account. Only keys moto could have issued (``AKIA``/``ASIA`` and 16 more
characters) are asked about; every other key is the default account without a question.
"""

from __future__ import annotations

import re

import aiohttp

from engine.local.operations import ACCOUNT_ID

_MOTO_KEY = re.compile(r"^(AKIA|ASIA)[A-Z0-9]{16}$")
_ACCOUNT = re.compile(r"<Account>(\d{12})</Account>")
_ACCOUNT_HEADER = "x-moto-account-id"


class AccountResolver:
    """Maps access keys to accounts by asking moto, and remembers the answers."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._known: dict[str, str] = {}

    def clear(self) -> None:
        """Forget every key (after a reset moto has forgotten them too)."""
        self._known.clear()

    async def account_of(
        self,
        session: aiohttp.ClientSession,
        access_key: str | None,
        headers: dict[str, str],
    ) -> str:
        """The account of a request with these (lower-cased) headers."""
        override = headers.get(_ACCOUNT_HEADER, "").strip()
        if override:  # moto takes it as it is, so the proxy does too
            return override
        if not access_key or not _MOTO_KEY.match(access_key):
            return ACCOUNT_ID
        known = self._known.get(access_key)
        if known is None:
            known = await self._ask(session, access_key)
            if known is None:  # moto did not answer: say the default, ask again next time
                return ACCOUNT_ID
            self._known[access_key] = known
        return known

    async def _ask(self, session: aiohttp.ClientSession, access_key: str) -> str | None:
        # moto does not check signatures: the credential scope alone says whose call it is.
        auth = (
            f"AWS4-HMAC-SHA256 Credential={access_key}/20240101/us-east-1/sts/aws4_request, "
            "SignedHeaders=host, Signature=0"
        )
        try:
            async with session.post(
                f"{self.upstream}/",
                data=b"Action=GetCallerIdentity&Version=2011-06-15",
                headers={
                    "Authorization": auth,
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            ) as resp:
                text = await resp.text() if resp.status == 200 else ""
        except aiohttp.ClientError:
            return None
        match = _ACCOUNT.search(text)
        return match.group(1) if match else None
