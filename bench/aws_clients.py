"""CPU of creating the AWS sinks' clients in a fresh process, four ways: a boto3 Session per client (what
the sinks did before), a botocore session per client, one botocore session for all, and a botocore
session per client sharing the first one's data loader (what `sinks/aws.py` does per profile).

Usage: python bench/aws_clients.py [runs]   (each way runs in its own `python -I` process, `runs` times)
"""

from __future__ import annotations

import subprocess
import sys

WAYS = ("boto3", "botocore", "botocore_shared", "botocore_loader")
CLIENTS = (("SSM #1", "ssm", "us-east-1"), ("SSM #2", "ssm", "us-east-1"), ("SSM eu-west-1", "ssm", "eu-west-1"),
           ("Secrets Manager", "secretsmanager", "us-east-1"), ("STS", "sts", "us-east-1"))

# The provider's client arguments (sinks/aws.py), with static keys and an endpoint nothing listens on:
# nothing is sent, only created.
CHILD = r'''
import sys, time
way, clients = sys.argv[1], eval(sys.argv[2])
started = time.process_time()
if way == "boto3":
    import boto3
else:
    import botocore.session
from botocore.config import Config
imported = time.process_time()
keys = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "example"}
config = {"retries": {"mode": "adaptive", "total_max_attempts": 3}, "connect_timeout": 10, "read_timeout": 30,
          "user_agent_extra": "tokendrop"}
shared = None if way == "boto3" else botocore.session.Session()

def create(service, region):
    if way == "boto3":
        return boto3.session.Session(region_name=region, **keys).client(
            service, endpoint_url="http://127.0.0.1:9", config=Config(**config))
    session = shared
    if way != "botocore_shared":
        session = botocore.session.Session()
        if way == "botocore_loader":
            session.register_component("data_loader", shared.get_component("data_loader"))
    return session.create_client(service, region_name=region, endpoint_url="http://127.0.0.1:9",
                                 config=Config(**config), **keys)

marks = [imported - started]
for _, service, region in clients:
    before = time.process_time()
    create(service, region)
    marks.append(time.process_time() - before)
marks.append(time.process_time() - started)
print(" ".join(f"{mark * 1000:.1f}" for mark in marks))
'''


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print("CPU ms | import | " + " | ".join(label for label, _, _ in CLIENTS) + " | total")
    for _ in range(runs):
        for way in WAYS:
            out = subprocess.run([sys.executable, "-I", "-c", CHILD, way, repr(CLIENTS)], check=True,
                                 capture_output=True, text=True).stdout.split()
            print(f"{way} | " + " | ".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
