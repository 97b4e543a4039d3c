"""The S3 SDK suite's harness: a real `hamster server` process on a free loopback port,
driven by boto3 (the AWS SDK for Python).

HAMSTER_BIN names the binary (the test command builds target/sim/hamster). Each server
is started by the fixture that yields it and stopped (SIGTERM, then SIGKILL) when the
fixture ends.
"""

import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import boto3
import botocore.config
import pytest

ACCESS_KEY = "HAMSTERTESTACCESSKEY"
SECRET_KEY = "hamster-test-secret-key-0123456789abcdef"
START_TIMEOUT_S = 30


def hamster_bin():
    path = os.environ.get("HAMSTER_BIN")
    if not path:
        here = os.path.dirname(__file__)
        path = os.path.join(here, "..", "..", "..", "target", "sim", "hamster")
    path = os.path.abspath(path)
    if not os.path.exists(path):
        pytest.exit(f"no hamster binary at {path}; build it or set HAMSTER_BIN", 2)
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_env():
    """The environment for client tools: this machine's AWS_CA_BUNDLE is for real AWS."""
    env = dict(os.environ)
    env.pop("AWS_CA_BUNDLE", None)
    return env


class Server:
    """One `hamster server` process over a data directory; restartable."""

    def __init__(self, data_dir, extra_args=()):
        self.data_dir = data_dir
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.extra_args = list(extra_args)
        self.proc = None
        self.log_path = os.path.join(os.path.dirname(data_dir), f"server-{self.port}.log")

    def command(self):
        return [hamster_bin(), "server", "--data", self.data_dir,
                "--s3", f"127.0.0.1:{self.port}", *self.extra_args]

    def start(self):
        env = client_env()
        env["HAMSTER_ACCESS_KEY"] = ACCESS_KEY
        env["HAMSTER_SECRET_KEY"] = SECRET_KEY
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env)
        self.wait_listening()
        return self

    def wait_listening(self):
        deadline = time.time() + START_TIMEOUT_S
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hamster exited early:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"hamster did not listen in time:\n{self.log()}")

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill9(self):
        self.stop(signal.SIGKILL)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    def client(self, access_key=ACCESS_KEY, secret_key=SECRET_KEY, **config):
        cfg = botocore.config.Config(
            s3={"addressing_style": config.pop("addressing_style", "path")},
            retries={"max_attempts": config.pop("max_attempts", 1), "mode": "standard"},
            signature_version=config.pop("signature_version", "s3v4"),
            **config)
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, config=cfg)


@pytest.fixture(scope="session")
def server():
    with tempfile.TemporaryDirectory(prefix="hamster-s3-") as tmp:
        s = Server(os.path.join(tmp, "data")).start()
        try:
            yield s
        finally:
            s.stop()


@pytest.fixture
def s3(server):
    return server.client()


@pytest.fixture
def bucket(s3):
    name = "b-" + uuid.uuid4().hex[:16]
    s3.create_bucket(Bucket=name)
    return name


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def status(excinfo):
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]
