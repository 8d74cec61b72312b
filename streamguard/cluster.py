"""Support for running the bundle on a multi-process deployment (`scripts/cluster.sh`, docker-compose).

Airflow's ``[core] hostname_callable`` names the host a task instance ran on. On separate machines
(or containers) the machine's name tells workers apart; when `scripts/cluster.sh` starts two Celery
workers on one machine it gives each its own ``STREAMGUARD_NODE_NAME`` so that the task instances'
``hostname`` says which worker ran them, as it would across machines.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    """``$STREAMGUARD_NODE_NAME`` when set, else the fully qualified name of this machine."""
    name = os.environ.get("STREAMGUARD_NODE_NAME", "").strip()
    return name or socket.getfqdn()
