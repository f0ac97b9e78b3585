"""ASN.1 corrections on top of ``asn1crypto.tsp``.

asn1crypto declares ``TimeStampResp.timeStampToken`` mandatory, but RFC 3161
section 2.4.2 makes it OPTIONAL: a rejection carries only the status.  This
module's :class:`TimeStampResp` is the RFC's structure; use it for encoding and
parsing every response.
"""

from __future__ import annotations

from asn1crypto import cms, core, tsp


class TimeStampResp(core.Sequence):
    """``TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken TimeStampToken OPTIONAL }``."""

    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]
