"""The one S3 URI parser: `s3://bucket/prefix` -> (bucket, prefix), or an error that names the setting."""

from __future__ import annotations

import re

# S3's bucket naming rules (3-63 characters, lower-case letters, digits, '.' and '-', alphanumeric at both ends).
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def is_s3(uri: str) -> bool:
    """True for anything meant as S3 (`s3:` prefix), so `s3:/x` is rejected, not taken for a local folder."""
    return uri.startswith("s3:")


def parse_s3_uri(uri: str, *, what: str = "S3 URI", key_required: bool = False) -> tuple[str, str]:
    """(bucket, key or prefix without a leading '/'); ValueError naming `what` when it is not a usable URI."""
    shape = f"{what} {uri!r} must look like s3://bucket/{'key' if key_required else 'prefix'}"
    if not uri.startswith("s3://"):
        raise ValueError(shape)
    bucket, _, rest = uri[len("s3://") :].partition("/")
    if not BUCKET.fullmatch(bucket):
        raise ValueError(f"{shape}: {bucket!r} is not an S3 bucket name")
    if key_required and not rest.strip("/"):
        raise ValueError(f"{shape}: no object key after the bucket")
    return bucket, rest.lstrip("/")
