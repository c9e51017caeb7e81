"""Fetching ``image_url`` / ``bg_image_url`` for the remove.bg drop-in, off unless allowed.

A server that fetches URLs for its callers can be made to reach what only it can
reach (server-side request forgery). So fetching is off by default and, when on
(``bgclear serve --allow-url-fetch HOST[,HOST...]``):

- only http and https URLs whose host is on the allow-list (names, IP addresses or
  networks in CIDR notation; ``*`` allows any host that resolves to public addresses);
- the host name is resolved here and the connection goes to the very address that was
  checked (no second lookup a DNS server could answer differently);
- loopback, private, link-local, shared, multicast and reserved addresses are refused
  unless the address itself is listed (an IP or a network), never through a host name;
- redirects are followed only on the same host (at most :data:`MAX_REDIRECTS`), each
  checked again; the body is capped at the server's upload limit and the whole fetch
  at a deadline.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_REDIRECTS = 3
DEFAULT_TIMEOUT = 10.0
_CHUNK = 64 * 1024


class FetchRefused(Exception):
    """The URL is not one this server may fetch (policy); the message says why."""


class FetchFailed(Exception):
    """The URL was allowed but the download did not succeed; the message says why."""


@dataclass(frozen=True)
class AllowList:
    """Hosts (lower-case names or IP literals), networks, and whether any public host is allowed."""

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    any_public: bool = False

    @classmethod
    def parse(cls, text: str | tuple[str, ...] | None) -> AllowList:
        """``"a.example.com,10.0.0.5,192.168.1.0/24,*"`` -> AllowList. Raises ValueError on a bad entry."""
        entries = text.split(",") if isinstance(text, str) else list(text or ())
        names: set[str] = set()
        networks: list[IPNetwork] = []
        any_public = False
        for raw in entries:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            if entry == "*":
                any_public = True
            elif "/" in entry:
                try:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise ValueError(f"not a host name, IP address or network: {raw.strip()!r}") from None
            elif _is_ip(entry.strip("[]")):
                address = ipaddress.ip_address(entry.strip("[]"))
                names.add(str(address))
                networks.append(ipaddress.ip_network(address))
            elif all(part and len(part) < 64 and part.replace("-", "").isalnum() for part in entry.split(".")):
                names.add(entry)
            else:
                raise ValueError(f"not a host name, IP address or network: {raw.strip()!r}")
        return cls(frozenset(names), tuple(networks), any_public)

    @property
    def enabled(self) -> bool:
        return bool(self.names or self.networks or self.any_public)

    def describe(self) -> str:
        parts = sorted(self.names) + [str(n) for n in self.networks if n.num_addresses > 1]
        return ", ".join(parts + (["any public host"] if self.any_public else []))

    def listed_address(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)

    def allows_host(self, host: str) -> bool:
        if host in self.names or self.any_public:
            return True
        return _is_ip(host) and self.listed_address(ipaddress.ip_address(host))

    def check_address(self, address: IPAddress) -> None:
        """Raise :class:`FetchRefused` unless ``address`` is public or itself listed."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if self.listed_address(address):
            return
        if not address.is_global or address.is_multicast:
            kind = ("loopback" if address.is_loopback else "link-local" if address.is_link_local
                    else "private" if address.is_private else "non-public")
            raise FetchRefused(f"the host resolves to a {kind} address ({address}); such addresses are fetched "
                               "only when listed themselves in --allow-url-fetch")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str


def check_url(url: str, allow: AllowList) -> _Target:
    """Parse ``url`` and check it against the policy; raises :class:`FetchRefused`."""
    if not allow.enabled:
        raise FetchRefused("this server fetches no URLs (start it with --allow-url-fetch HOST to allow some)")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise FetchRefused("the URL cannot be parsed") from None
    if parts.scheme not in ("http", "https"):
        raise FetchRefused(f"only http and https URLs are fetched, not {parts.scheme or 'a URL without a scheme'}")
    if parts.username is not None or parts.password is not None:
        raise FetchRefused("URLs with a user name or password are not fetched")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise FetchRefused("the URL has no host")
    if not allow.allows_host(host):
        raise FetchRefused(f"the host {host!r} is not on this server's --allow-url-fetch list")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return _Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path)


def resolve(target: _Target, allow: AllowList) -> IPAddress:
    """The address to connect to: the first one the host resolves to that the policy allows."""
    if _is_ip(target.host):
        address = ipaddress.ip_address(target.host)
        allow.check_address(address)
        return address
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchFailed(f"the host {target.host!r} cannot be resolved ({exc})") from None
    refusal: FetchRefused | None = None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        try:
            allow.check_address(address)
            return address
        except FetchRefused as exc:
            refusal = refusal or exc
    raise refusal or FetchFailed(f"the host {target.host!r} has no address")


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a checked address, with the URL's host name in the Host header."""

    def __init__(self, host: str, port: int, address: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = str(address)

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked address; the certificate is verified for the URL's host name."""

    def __init__(self, host: str, port: int, address: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = str(address)

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{max(1, round(n / 1e3))} kB"


def _left(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchFailed("the download took too long")
    return remaining


def _get(target: _Target, address: IPAddress, deadline: float, max_bytes: int) -> tuple[int, str | None, bytes]:
    """One GET: (status, Location header, body); the body only for 200."""
    kind = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    conn = kind(target.host, target.port, address, timeout=_left(deadline))
    try:
        conn.request("GET", target.path, headers={"User-Agent": "bgclear", "Accept": "image/*"})
        sock = conn.sock  # kept: the connection lets go of it when the response closes the connection
        response = conn.getresponse()
        if response.status != 200:
            return response.status, response.getheader("Location"), b""
        length = response.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            raise FetchFailed(f"the file is {_size(int(length))}; the limit is {_size(max_bytes)}")
        body = bytearray()
        while True:
            sock.settimeout(_left(deadline))
            chunk = response.read1(_CHUNK)
            if not chunk:
                return 200, None, bytes(body)
            body.extend(chunk)
            if len(body) > max_bytes:
                raise FetchFailed(f"the file is larger than the limit of {_size(max_bytes)}")
    except (OSError, http.client.HTTPException) as exc:
        if time.monotonic() >= deadline or isinstance(exc, TimeoutError):
            raise FetchFailed("the download took too long") from None
        raise FetchFailed(f"the download failed ({exc.__class__.__name__}: {str(exc)[:120]})") from None
    finally:
        conn.close()


def fetch(url: str, allow: AllowList, max_bytes: int, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """Download ``url`` under the policy above (blocking; run it on a thread).

    Raises :class:`FetchRefused` (not allowed) or :class:`FetchFailed` (allowed, but no file).
    """
    deadline = time.monotonic() + timeout
    target = check_url(url, allow)
    for _ in range(MAX_REDIRECTS + 1):
        status, location, body = _get(target, resolve(target, allow), deadline, max_bytes)
        if status == 200:
            return body
        if status not in (301, 302, 303, 307, 308) or not location:
            raise FetchFailed(f"the server answered HTTP {status}")
        url = urljoin(url, location)
        host = (urlsplit(url).hostname or "").rstrip(".").lower()
        if host != target.host:
            raise FetchFailed(f"the URL redirects to another host ({host or 'none'}); redirects are followed only on the same host")
        target = check_url(url, allow)
    raise FetchFailed(f"more than {MAX_REDIRECTS} redirects")
