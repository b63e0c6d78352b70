"""``CodeObjects`` on aiobotocore: the CodeSha256 an S3 code object would give a function.

Read only when the log cannot say which CodeSha256 a definition's S3 code has (a function glam
adopts): GetObject, streamed in chunks into SHA-256, never held in memory whole, and bounded
by ``max_bytes`` (Lambda's own limit on a deployment package is far below the default).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from engine.aws.errors import translate
from engine.aws.ratelimit import RateLimiter
from engine.errors import AwsInvalid, AwsNotFound

CHUNK = 1024 * 1024
MAX_BYTES = 1024 * 1024 * 1024  # 1 GiB: a .zip Lambda accepts is far smaller


class AwsCodeObjects:
    """S3 objects holding function code (``engine.ports.CodeObjects``)."""

    def __init__(
        self, client: Any, limiter: RateLimiter | None = None, *, max_bytes: int = MAX_BYTES
    ) -> None:
        self._client = client
        self._limiter = limiter or RateLimiter(rate=10.0, poll_rate=10.0)
        self._max = max_bytes

    async def code_sha256(self, bucket: str, key: str, version: str | None = None) -> str | None:
        """Base64 SHA-256 of the object's bytes, or None when there is no such object."""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version:
            kwargs["VersionId"] = version
        await self._limiter.acquire(poll=True)
        digest = hashlib.sha256()
        size = 0
        try:
            answer = await self._client.get_object(**kwargs)
            async with answer["Body"] as body:
                while chunk := await body.read(CHUNK):
                    size += len(chunk)
                    if size > self._max:
                        raise AwsInvalid(
                            f"s3://{bucket}/{key} is larger than {self._max} bytes",
                            operation="GetObject",
                            hint="a Lambda deployment package is far smaller: check the S3Key",
                        )
                    digest.update(chunk)
        except AwsInvalid:
            raise
        except Exception as exc:  # translated at the boundary
            error = translate(exc, "GetObject", mutating=False)
            if isinstance(error, AwsNotFound):
                return None
            raise error from None
        return base64.b64encode(digest.digest()).decode()
