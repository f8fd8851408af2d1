"""Test infrastructure for the Teams transport, on loopback only (reuse it in any Teams test).

- `MicrosoftFake`: a test HTTPS proxy with its own test CA. The bot reaches Microsoft's real URLs
  (login.botframework.com keys, login.microsoftonline.com token endpoint and tenant keys) through
  the standard HTTPS_PROXY, trusting the test CA through SSL_CERT_FILE / REQUESTS_CA_BUNDLE; the
  proxy answers those hosts itself. No product setting redirects anything. `fake.use_env(monkeypatch)`
  sets the variables for the current process; `fake.env()` returns them for a subprocess.
- `TestKeys`: RSA signing keys published by the fake (with `endorsements`) and `mint()` to sign
  channel tokens the way the Bot Framework does (iss https://api.botframework.com, aud app id,
  `serviceurl` claim, `kid`, RS256).
- `FakeConnector`: a Bot Connector on loopback that records every call and can be scripted
  (429-then-200, 403, ...).
- `ServerThread`: our Starlette app under uvicorn on a free loopback port, in a thread.
- `message_activity()`: an activity shaped as Teams sends it.
- `assert_valid_card(card)`: Microsoft's Adaptive Cards renderer (npm `adaptivecards`, plain Node)
  parses and validates the card; plus every Action.Execute has a `verb` and `data.action`.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

APP_ID = "8e0a1c2d-0000-4000-8000-00000000a99e"
APP_PASSWORD = "test-app-password-not-real"
TENANT_ID = "5f1b7c3e-1111-4222-8333-444455556666"
OTHER_TENANT_ID = "0b0b0b0b-9999-4999-8999-999999999999"
BF_ISSUER = "https://api.botframework.com"
MICROSOFT_HOSTS = ("login.botframework.com", "login.microsoftonline.com", "sts.windows.net")
NODE_DIR = Path(__file__).resolve().parent / "node"


# --- keys and tokens -------------------------------------------------------------------------

def _b64(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()


class TestKeys:
    """Signing keys with their published JWKS entries."""

    __test__ = False

    def __init__(self):
        self._private: dict[str, Any] = {}
        self.published: list[dict] = []

    def add(self, kid: str | None = None, endorsements: list[str] | None = ("msteams",), publish: bool = True) -> str:
        kid = kid or "kid-" + uuid.uuid4().hex[:10]
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._private[kid] = key
        if publish:
            self.publish(kid, endorsements)
        return kid

    def publish(self, kid: str, endorsements: list[str] | None = ("msteams",)) -> None:
        pub = self._private[kid].public_key().public_numbers()
        entry = {"kty": "RSA", "use": "sig", "kid": kid, "n": _b64(pub.n), "e": _b64(pub.e)}
        if endorsements is not None:
            entry["endorsements"] = list(endorsements)
        self.published = [k for k in self.published if k["kid"] != kid] + [entry]

    def jwks(self) -> dict:
        return {"keys": list(self.published)}

    def pem(self, kid: str) -> bytes:
        return self._private[kid].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption())

    def mint(self, kid: str, *, service_url: str | None, iss: str = BF_ISSUER, aud: str = APP_ID,
             lifetime: int = 3600, issued: float | None = None, alg: str = "RS256", headers: dict | None = None,
             omit_kid: bool = False, **claims) -> str:
        now = int(issued if issued is not None else time.time())
        body = {"iss": iss, "aud": aud, "nbf": now - 10, "iat": now - 10, "exp": now + lifetime, **claims}
        if service_url is not None:
            body["serviceurl"] = service_url
        hdr = dict(headers or {})
        if not omit_kid:
            hdr.setdefault("kid", kid)
        if alg == "RS256":
            return jwt.encode(body, self.pem(kid), algorithm="RS256", headers=hdr)
        if alg == "HS256":
            return jwt.encode(body, "not-a-real-secret-but-long-enough-for-hs256!", algorithm="HS256", headers=hdr)
        if alg == "none":
            return jwt.encode(body, None, algorithm="none", headers=hdr)
        raise ValueError(alg)


# --- a test CA and an intercepting HTTPS proxy for Microsoft's hosts ------------------------

def _make_ca(tmp: Path) -> tuple[Path, Path, Path]:
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "safeguarding-bot test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=7))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, MICROSOFT_HOSTS[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in MICROSOFT_HOSTS]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file, cert_file, key_file = tmp / "test-ca.pem", tmp / "leaf.pem", tmp / "leaf.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_file, cert_file, key_file


class _Inner(BaseHTTPRequestHandler):
    """HTTP inside the TLS tunnel: answers as the Microsoft host the client asked for."""

    protocol_version = "HTTP/1.1"

    def __init__(self, request, client_address, server, host):
        self.target_host = host
        super().__init__(request, client_address, server)

    def log_message(self, *args):
        pass

    def _answer(self, method: str):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        fake: MicrosoftFake = self.server.fake
        status, payload, headers = fake.handle(self.target_host, method, self.path, body, dict(self.headers))
        data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._answer("GET")

    def do_POST(self):
        self._answer("POST")


class _Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_CONNECT(self):
        host, _, port = self.path.partition(":")
        fake: MicrosoftFake = self.server.fake
        fake.connects.append(self.path)
        if host not in MICROSOFT_HOSTS or port != "443":
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.close_connection = True
            return
        self.send_response(200, "Connection Established")
        self.end_headers()
        try:
            tls = fake.ssl_context.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):
            self.close_connection = True
            return
        try:
            _Inner(tls, self.client_address, self.server, host)
        except (ssl.SSLError, OSError, ConnectionError):
            pass
        self.close_connection = True

    def do_GET(self):  # plain-HTTP proxying is not offered
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET


class MicrosoftFake:
    """The proxy and everything it serves for Microsoft's hosts. Use as a context manager."""

    def __init__(self, tmp: Path, tenant_id: str = TENANT_ID):
        self.tenant_id = tenant_id
        self.ca_file, cert, key = _make_ca(tmp)
        self.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl_context.load_cert_chain(cert, key)
        self.keys = TestKeys()       # Bot Framework channel keys
        self.entra_keys = TestKeys()  # Entra ID keys of our tenant (no endorsements)
        self.jwks_delay = 0.0
        self.jwks_status = 200
        self.token_down = False
        self.requests: list[tuple[str, str, str]] = []  # (host, method, path)
        self.connects: list[str] = []
        self.tokens_issued: list[str] = []
        self._n = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
        self._server.daemon_threads = True
        self._server.fake = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {"HTTPS_PROXY": self.proxy_url, "https_proxy": self.proxy_url, "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost", "SSL_CERT_FILE": str(self.ca_file),
                "REQUESTS_CA_BUNDLE": str(self.ca_file)}

    def use_env(self, monkeypatch) -> None:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "CURL_CA_BUNDLE"):
            monkeypatch.delenv(name, raising=False)
        for k, v in self.env().items():
            monkeypatch.setenv(k, v)

    def count(self, host: str, path_part: str = "") -> int:
        return sum(1 for h, _, p in self.requests if h == host and path_part in p)

    def handle(self, host: str, method: str, path: str, body: bytes, headers: dict):
        self.requests.append((host, method, path))
        path_only = urlsplit(path).path
        t = self.tenant_id
        if host == "login.botframework.com" and path_only == "/v1/.well-known/keys":
            if self.jwks_delay:
                time.sleep(self.jwks_delay)
            if self.jwks_status != 200:
                return self.jwks_status, {"error": "unavailable"}, None
            return 200, self.keys.jwks(), None
        if host == "login.microsoftonline.com":
            base = f"https://login.microsoftonline.com/{t}"
            if path_only == f"/{t}/discovery/v2.0/keys":
                return 200, self.entra_keys.jwks(), None
            if path_only == f"/{t}/v2.0/.well-known/openid-configuration":
                if self.token_down:
                    return 503, {"error": "temporarily_unavailable"}, None
                return 200, {"issuer": f"{base}/v2.0", "token_endpoint": f"{base}/oauth2/v2.0/token",
                             "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                             "jwks_uri": f"{base}/discovery/v2.0/keys"}, None
            if path_only == f"/{t}/oauth2/v2.0/token" and method == "POST":
                if self.token_down:
                    return 503, {"error": "temporarily_unavailable", "error_description": "down"}, None
                now = int(time.time())
                token = jwt.encode({"aud": "https://api.botframework.com", "iss": f"https://sts.windows.net/{t}/",
                                    "appid": APP_ID, "tid": t, "iat": now, "exp": now + 3600,
                                    "jti": f"bot-token-{next(self._n)}"},
                                   "fake-token-endpoint-signing-secret-32b", algorithm="HS256")
                self.tokens_issued.append(token)
                return 200, {"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600,
                             "access_token": token}, None
        return 404, {"error": "not found in the fake"}, None


# --- a fake Bot Connector --------------------------------------------------------------------

class _ConnectorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, method: str):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        conn: FakeConnector = self.server.connector
        status, payload, headers = conn.record(method, self.path, dict(self.headers), body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        self._answer("POST")

    def do_PUT(self):
        self._answer("PUT")

    def do_GET(self):
        self._answer("GET")


class FakeConnector:
    """Records every call: `calls` is a list of dicts (method, path, authorization, body).
    `script(status, retry_after=None)` queues answers for the next calls (then 200 again)."""

    def __init__(self, prefix: str = "/emea/"):
        self.prefix = prefix
        self.calls: list[dict] = []
        self._script: list[tuple[int, dict | None]] = []
        self._n = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _ConnectorHandler)
        self._server.daemon_threads = True
        self._server.connector = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    @property
    def service_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.prefix}"

    def script(self, status: int, retry_after: str | None = None, times: int = 1) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else None
        with self._lock:
            self._script.extend([(status, headers)] * times)

    def record(self, method: str, path: str, headers: dict, body: Any):
        lower = {k.lower(): v for k, v in headers.items()}
        with self._lock:
            self.calls.append({"method": method, "path": path, "authorization": lower.get("authorization"),
                               "body": body, "at": time.monotonic()})
            if self._script:
                status, extra = self._script.pop(0)
                return status, {"error": {"code": str(status), "message": "scripted"}}, extra
        rel = path[len(self.prefix) - 1:] if path.startswith(self.prefix) else path
        if method == "POST" and rel.rstrip("/") == "/v3/conversations":
            return 200, {"id": f"a:conv-{next(self._n)}"}, None
        if method == "PUT":
            return 200, {"id": path.rsplit("/", 1)[-1]}, None
        return 200, {"id": f"activity-{next(self._n)}"}, None

    def sends(self) -> list[dict]:
        return [c for c in self.calls if c["method"] == "POST" and c["path"].endswith("/activities")]


# --- our server on a loopback port -----------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """uvicorn serving a Starlette app (from `bot.server.create_app`) on 127.0.0.1, in a thread."""

    def __init__(self, app):
        import uvicorn

        self.app = app
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False, lifespan="on"))
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self._thread.join(10)


class ServeProcess:
    """`safeguarding-bot serve` as a subprocess on a free loopback port; waits for /healthz.
    `env` must hold DATABASE_URL etc. (the `cli_env` fixture; use the `store` fixture too so that
    a PostgreSQL test schema is migrated)."""

    def __init__(self, env: dict, cwd: Path, *args: str, timeout: float = 30.0):
        self.port = free_port()
        self.env, self.cwd, self.args, self.timeout = env, cwd, args, timeout
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        import httpx

        self.proc = subprocess.Popen(["safeguarding-bot", "serve", "--port", str(self.port), *self.args],
                                     env=self.env, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.monotonic() + self.timeout
        with httpx.Client(trust_env=False) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"serve exited: {self.proc.stderr.read()}")
                try:
                    if c.get(self.url + "/healthz").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("serve did not become healthy")

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr) if self.proc else ():
            stream.close()


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# --- activities as Teams sends them ----------------------------------------------------------

def message_activity(service_url: str, text: str = "hello", *, tenant_id: str = TENANT_ID,
                     channel_id: str = "msteams", app_id: str = APP_ID, user_id: str = "29:1user-teams-id",
                     aad_object_id: str = "a0a0a0a0-0000-4000-8000-000000000001",
                     conversation_id: str = "a:1personal-conversation-id", **extra) -> dict:
    """A 1:1 message activity shaped like Teams' (Bot Framework protocol, Teams channelData)."""
    return {
        "type": "message",
        "id": "1700000000" + uuid.uuid4().hex[:6],
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z"),
        "localTimestamp": dt.datetime.now(dt.timezone.utc).isoformat(),
        "serviceUrl": service_url,
        "channelId": channel_id,
        "from": {"id": user_id, "name": "Test Teacher", "aadObjectId": aad_object_id},
        "conversation": {"conversationType": "personal", "tenantId": tenant_id, "id": conversation_id},
        "recipient": {"id": f"28:{app_id}", "name": "Safeguarding"},
        "textFormat": "plain",
        "locale": "en-GB",
        "text": text,
        "entities": [{"type": "clientInfo", "locale": "en-GB", "country": "GB", "platform": "Web",
                      "timezone": "Europe/London"}],
        "channelData": {"tenant": {"id": tenant_id}},
        **extra,
    }


# --- Adaptive Card validation (Microsoft's renderer in plain Node) ---------------------------

def node_tools_ready() -> bool:
    return ((NODE_DIR / "node_modules" / "adaptivecards" / "dist" / "adaptivecards.js").exists()
            and (NODE_DIR / "node_modules" / "@microsoft" / "app-manifest" / "build").exists())


def ensure_node_tools() -> None:
    """Install the pinned npm tools (tests/node/package-lock.json) if .ci/run has not already."""
    if node_tools_ready():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed for the Teams card and manifest checks (see README)")
    subprocess.run([npm, "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", "--ignore-scripts"],
                   check=True, capture_output=True, timeout=300)


def card_json(card: Any) -> dict:
    if isinstance(card, dict):
        return card
    return card.model_dump(by_alias=True, exclude_none=True, mode="json")


def card_errors(card: Any) -> list[dict]:
    """Errors Microsoft's renderer reports for the card (empty list: valid)."""
    ensure_node_tools()
    proc = subprocess.run(["node", str(NODE_DIR / "validate_card.js")], input=json.dumps(card_json(card)),
                          capture_output=True, text=True, timeout=60)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"validate_card.js failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)["errors"]


def _walk(node: Any):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def execute_action_problems(card: Any) -> list[str]:
    problems = []
    for node in _walk(card_json(card)):
        if node.get("type") == "Action.Execute":
            title = node.get("title") or node.get("id") or "?"
            if not node.get("verb"):
                problems.append(f"Action.Execute '{title}' has no verb")
            data = node.get("data")
            if not isinstance(data, dict) or not data.get("action"):
                problems.append(f"Action.Execute '{title}' has no data.action")
    return problems


def assert_valid_card(card: Any) -> None:
    """The card parses and validates in Microsoft's renderer, and every Action.Execute carries
    both `verb` (Teams needs it) and `data.action` (what the SDK's on_card_action_execute matches)."""
    body = card_json(card)
    assert body.get("type") == "AdaptiveCard", "not an AdaptiveCard"
    problems = [f"renderer: {e['message']}" for e in card_errors(body)] + execute_action_problems(body)
    assert not problems, "invalid Adaptive Card:\n  " + "\n  ".join(problems)
