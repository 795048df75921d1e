"""API versions (buildpacks/spec buildpack.md#buildpack-api-version, platform.md#platform-api-version): `<major>.<minor>` compared numerically."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_VERSION = re.compile(r"^(\d+)(?:\.(\d+))?$")


@total_ordering
@dataclass(frozen=True)
class ApiVersion:
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> ApiVersion:
        match = _VERSION.match(text.strip()) if isinstance(text, str) else None
        if not match:
            raise ValueError(f"'{text}' is not an API version (expected <major>.<minor>, e.g. 0.10)")
        return cls(int(match.group(1)), int(match.group(2) or 0))

    def __lt__(self, other: ApiVersion) -> bool:
        return (self.major, self.minor) < (other.major, other.minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def at_least(self, text: str) -> bool:
        return self >= ApiVersion.parse(text)


# The Buildpack APIs the reference lifecycle (v0.21) supports: lifecycle api/apis.go.
SUPPORTED_BUILDPACK_APIS = tuple(ApiVersion(0, m) for m in range(7, 13))
# Platform APIs: lifecycle api/apis.go supports 0.7 .. 0.15; cnbsim defaults to the newest.
SUPPORTED_PLATFORM_APIS = tuple(ApiVersion(0, m) for m in range(7, 16))
DEFAULT_PLATFORM_API = SUPPORTED_PLATFORM_APIS[-1]
# What a buildpack that names no (or no valid) API in metadata.toml is taken to follow: the newest.
DEFAULT_BUILDPACK_API = SUPPORTED_BUILDPACK_APIS[-1]


def supported_range(apis: tuple[ApiVersion, ...]) -> str:
    return f"{apis[0]} to {apis[-1]}"
