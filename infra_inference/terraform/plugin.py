"""`terraform-provider-infra-inference`: the executable Terraform starts, speaking go-plugin's handshake.

Terraform runs the plugin with a magic cookie in the environment, reads one
line from its stdout (`1|6|unix|<socket>|grpc|<cert>`: core protocol 1, plugin
protocol 6, where to dial, and the server certificate to trust), then talks
gRPC over TLS on that Unix socket until it calls GRPCController.Shutdown.
"""

from __future__ import annotations

import base64
import datetime
import os
import sys
import tempfile
import threading
from concurrent import futures

MAGIC_COOKIE_KEY = "TF_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"
# Terraform plans with parallelism 10 by default; a few more for its own control calls.
WORKERS = 16


def _certificate() -> tuple[bytes, bytes, bytes]:
    """(DER certificate, PEM certificate, PEM key): a fresh self-signed P-256 pair for this process."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                         data_encipherment=False, key_agreement=True, key_cert_sign=True,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.DER), cert.public_bytes(serialization.Encoding.PEM), key_pem


def main() -> None:
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE:
        sys.stderr.write("This is the infra-inference Terraform provider: Terraform starts it. Run "
                         "`infra-inference terraform install`, then `terraform init` in your configuration.\n")
        sys.exit(1)
    import grpc
    from tf.gen import grpc_controller_pb2 as controller_pb
    from tf.gen import grpc_controller_pb2_grpc as controller_rpc

    from infra_inference.terraform.protocol import serve_grpc

    stopped = threading.Event()

    class Controller(controller_rpc.GRPCControllerServicer):
        def Shutdown(self, request: object, context: object) -> object:
            stopped.set()
            return controller_pb.Empty()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=WORKERS))
    serve_grpc(server)
    controller_rpc.add_GRPCControllerServicer_to_server(Controller(), server)
    der, cert_pem, key_pem = _certificate()
    with tempfile.TemporaryDirectory(prefix="tf-infra-inference-") as tmp:
        socket = os.path.join(tmp, "plugin.sock")
        server.add_secure_port(f"unix://{socket}", grpc.ssl_server_credentials([(key_pem, cert_pem)]))
        server.start()
        cert = base64.b64encode(der).decode().rstrip("=")
        sys.stdout.write(f"1|6|unix|{socket}|grpc|{cert}\n")
        sys.stdout.flush()
        try:
            stopped.wait()
        except KeyboardInterrupt:  # Terraform forwards Ctrl-C to its plugins; it shuts us down itself
            stopped.wait()
        server.stop(grace=1).wait()
