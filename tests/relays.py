"""Two small TCP relays for testing network settings against the real servers: a TLS front
(https with a certificate from a test CA) and an HTTP forward proxy."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


class Relay:
    """Accepts connections on 127.0.0.1 and pipes each one to the socket `upstream` opens for
    it, both ways, until either side closes."""

    def __init__(self):
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def upstream(self, client: socket.socket) -> tuple[socket.socket, socket.socket, bytes]:
        """The (possibly wrapped) client socket, the upstream socket, and bytes already read
        from the client that are due upstream."""
        raise NotImplementedError

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            client, server, pending = self.upstream(client)
        except (OSError, ValueError):
            client.close()
            return
        server.sendall(pending)
        threading.Thread(target=_pipe, args=(server, client), daemon=True).start()
        _pipe(client, server)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(256 * 1024):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class TlsFront(Relay):
    """https://localhost:<port> in front of a plain-http server on 127.0.0.1:`target_port`;
    `client_certificates`: only for clients that show a certificate the test CA signed."""

    def __init__(
        self, target_port: int, certificates: Certificates, client_certificates: bool = False
    ):
        self._target_port = target_port
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(certificates.server_cert, certificates.server_key)
        if client_certificates:
            self._context.verify_mode = ssl.CERT_REQUIRED
            self._context.load_verify_locations(certificates.ca_bundle)
        super().__init__()

    def upstream(self, client):
        tls_client = self._context.wrap_socket(client, server_side=True)
        return tls_client, socket.create_connection(("127.0.0.1", self._target_port)), b""


class ForwardProxy(Relay):
    """An HTTP proxy whose host names exist only here: `hosts` maps each to a port on
    127.0.0.1, so a client that reaches such a host went through the proxy. It forwards
    absolute-form requests (`PUT http://name:port/key HTTP/1.1`, sent on as they are) and
    tunnels CONNECT requests. `asked` lists the host:port each connection asked for; one for a
    host not in `hosts` is closed."""

    def __init__(self, hosts: dict[str, int]):
        self._hosts = hosts
        self.asked: list[str] = []
        super().__init__()

    def upstream(self, client):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                raise ValueError("connection closed before a request head")
            head += chunk
        method, target, _ = head.split(b" ", 2)
        # Every request of a kept-alive connection goes to the same host: the first decides.
        authority = target.decode().split("://", 1)[-1].split("/", 1)[0]
        self.asked.append(authority)
        port = self._hosts.get(authority.split(":")[0])
        if port is None:
            raise ValueError(f"no host {authority} here")
        server = socket.create_connection(("127.0.0.1", port))
        if method == b"CONNECT":
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            return client, server, head.split(b"\r\n\r\n", 1)[1]
        return client, server, head


class Certificates:
    """A test CA, and a certificate for localhost and one for a client signed by it, as PEM
    files in `directory`; `expired`: ones that expired yesterday. `server` says how the
    server's certificate is made where not as above: "self-signed" (as `openssl req -x509`
    makes one: a CA's certificate of its own, which is then the bundle), or "common name only"
    (signed by the CA, its name in the subject's common name and no subjectAltName)."""

    def __init__(self, directory: Path, expired: bool = False, server: str = "signed by the CA"):
        now = datetime.datetime.now(datetime.timezone.utc)
        day = datetime.timedelta(days=1)
        validity = (now - 2 * day, now - day) if expired else (now - day, now + day)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "s3turbo test CA")])
        ca_cert = (
            _builder(ca_name, ca_name, ca_key, validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        if server == "self-signed":
            server_key = ec.generate_private_key(ec.SECP256R1())
            server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
            server_cert = (
                _builder(server_name, server_name, server_key, validity)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(
                    x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
                )
                .sign(server_key, hashes.SHA256())
            )
            ca_cert = server_cert
            server = (server_cert.public_bytes(serialization.Encoding.PEM), _pem(server_key))
        else:
            server = _signed_leaf(
                "localhost",
                ExtendedKeyUsageOID.SERVER_AUTH,
                ca_key,
                ca_name,
                validity,
                alt_names=server != "common name only",
            )
        client = _signed_leaf("client", ExtendedKeyUsageOID.CLIENT_AUTH, ca_key, ca_name, validity)
        self.ca_bundle = directory / "ca.pem"
        self.server_cert = directory / "server.pem"
        self.server_key = directory / "server.key"
        # A client's certificate and key, apart and in one file (botocore takes both forms).
        self.client_cert = directory / "client.pem"
        self.client_key = directory / "client.key"
        self.client_cert_and_key = directory / "client-and-key.pem"
        self.ca_bundle.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        for (cert_path, key_path), (cert, key) in (
            ((self.server_cert, self.server_key), server),
            ((self.client_cert, self.client_key), client),
        ):
            cert_path.write_bytes(cert)
            key_path.write_bytes(key)
        self.client_cert_and_key.write_bytes(client[0] + client[1])


def _signed_leaf(
    name, usage, ca_key, ca_name, validity, alt_names: bool = True
) -> tuple[bytes, bytes]:
    """A certificate for `name` (a host name, for a server) that the CA signed for `usage`, and
    its key, as PEM; `alt_names`: with the name (and 127.0.0.1's address, for localhost) in
    subjectAltName too."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = _builder(subject, ca_name, key, validity).add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    )
    if alt_names:
        names = [x509.DNSName(name)]
        if name == "localhost":
            names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False).sign(
        ca_key, hashes.SHA256()
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem(key)


def _pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _builder(subject, issuer, key, validity) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
    )
