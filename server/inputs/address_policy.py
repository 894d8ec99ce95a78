"""Which network addresses an image URL may reach: public unicast only, judged after DNS resolution."""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges Python's ipaddress flags too weakly or not at all (its is_global varies between versions).
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_IPV4_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_IPV4_BENCHMARK = ipaddress.IPv4Network("198.18.0.0/15")
_IPV6_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")
_IPV6_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_IPV6_DOCUMENTATION = ipaddress.IPv6Network("2001:db8::/32")
_IPV6_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


def non_public_reason(address: IPAddress) -> str | None:
    """None for a public unicast address; otherwise what kind of address it is, for the error message."""
    if isinstance(address, ipaddress.IPv6Address):
        reason = _ipv6_embedding_reason(address)
        if reason is not None:
            return reason
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("carrier-grade NAT", address in _CGNAT if address.version == 4 else False),
    )
    for name, applies in checks:
        if applies:
            return name
    if address.version == 4 and (address in _IPV4_THIS_NETWORK or address in _IPV4_BENCHMARK):
        return "reserved"
    if address.version == 6 and any(
        address in net for net in (_IPV6_SITE_LOCAL, _IPV6_UNIQUE_LOCAL, _IPV6_DOCUMENTATION)
    ):
        return "private"
    if not address.is_global:
        return "not globally routable"
    return None


def _ipv6_embedding_reason(address: ipaddress.IPv6Address) -> str | None:
    """IPv6 forms that carry an IPv4 address: mapped and compatible ones are refused outright (a dual-stack
    socket would reach the IPv4 host), tunnel and NAT64 forms are judged by the IPv4 address inside."""
    if address.ipv4_mapped is not None or (address in _IPV6_COMPATIBLE and int(address) > 1):
        return "IPv4-mapped IPv6"
    embedded: ipaddress.IPv4Address | None = address.sixtofour
    if embedded is None and address.teredo is not None:
        embedded = address.teredo[1]
    if embedded is None and any(address in net for net in _NAT64):
        embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if embedded is None:
        return None
    inner = non_public_reason(embedded)
    return None if inner is None else f"{inner} (embedded in IPv6)"


def parse_address(text: str) -> IPAddress | None:
    """An IP address from getaddrinfo's answer (scope ids like fe80::1%eth0 dropped), or None."""
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
