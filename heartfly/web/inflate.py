"""A gzip or deflate request body, inflated as it arrives, with its end checked.

aiohttp's own inflating (auto_decompress, turned off in create_app) checks that a deflate stream
ended but not a gzip one: a gzipped body cut short on its way (a killed pipe, a proxy's timeout)
inflated to a prefix that was stored as the whole body, and its whole resend with the same
ping_id was then a duplicate. Here a stream that stops before its end is refused.
"""

from __future__ import annotations

import zlib

INFLATED = frozenset({"gzip", "deflate"})
# aiohttp knows br and zstd, this install has no decoder for them; compress is LZW, which none has
UNSUPPORTED = frozenset({"br", "zstd", "compress", "x-compress"})
# gzip members may follow one another (`cat a.gz b.gz`), each inflated by a decompressor of its
# own, which copies the rest of the input: thousands of tiny members cost seconds of the event
# loop. No client sends more than a few; aiohttp refused more than this many too.
MAX_MEMBERS = 1024


class BodyError(ValueError):
    """Why a body cannot be read, said to the client."""


class Inflater:
    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._stream: zlib._Decompress | None = None
        self._members = 0

    def feed(self, data: bytes, room: int) -> bytes:
        """What `data` inflates to, at most `room` bytes: a body that would inflate past its
        cap is refused whole, so nothing more of a zip bomb is inflated."""
        parts: list[bytes] = []  # joined once: adding each member's to all before it was quadratic
        size = 0
        try:
            while data and size < room:
                if self._stream is None or self._stream.eof:  # gzip members may follow one another
                    self._members += 1
                    if self._members > MAX_MEMBERS:
                        raise BodyError(f"more than {MAX_MEMBERS} {self.encoding} members")
                    self._stream = zlib.decompressobj(self._wbits(data))
                part = self._stream.decompress(data, room - size)
                parts.append(part)
                size += len(part)
                data = self._stream.unused_data if self._stream.eof else b""
        except zlib.error:
            raise BodyError(f"not valid {self.encoding} data") from None
        return b"".join(parts)

    def finish(self) -> None:
        """The body has arrived: it must end where its stream does."""
        if self._stream is not None and not self._stream.eof:
            raise BodyError(f"the {self.encoding} data ends early (cut short on its way?)")

    def _wbits(self, first: bytes) -> int:
        if self.encoding == "gzip":
            return 16 + zlib.MAX_WBITS
        # "deflate" is zlib-wrapped (RFC 1950), but some clients send it raw; aiohttp took both
        return zlib.MAX_WBITS if first[0] & 0x0F == 8 else -zlib.MAX_WBITS


def inflater(content_encoding: str) -> Inflater | None:
    """An Inflater for a body sent with this Content-Encoding, None for one read as it is."""
    # RFC 9110: x-gzip is gzip, identity no coding at all; a stacked list ("gzip, gzip") is one
    # this reader cannot take, and so is one naming a coding it has no decoder for ("br, zstd").
    # Any other word (a charset by mistake) is read as it is, as aiohttp did.
    given = content_encoding.strip().lower()
    codings = [
        "gzip" if c == "x-gzip" else c for c in (c.strip() for c in given.split(",")) if c not in ("", "identity")
    ]
    encoding = ",".join(codings)
    if not UNSUPPORTED.isdisjoint(codings) or (len(codings) > 1 and not INFLATED.isdisjoint(codings)):
        raise BodyError(f"Content-Encoding {given[:40].encode('ascii', 'replace').decode()} is not supported")
    return Inflater(encoding) if encoding in INFLATED else None
