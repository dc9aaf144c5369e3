"""nginx as the peer reverse proxy in the HTTP benchmarks: started with a generated config, one worker.

`tools/nginx/install.sh` installs it (Debian's package); where it is absent,
`nginx_missing()` says why and the benchmarks measure without it.

The config is what one would write to proxy model servers: HTTP/1.1 with
keep-alive to the upstream (`keepalive` pool, `Connection ""`), and
`proxy_buffering off`, so a streamed answer is passed on as it comes (the
default buffers it, which would hold tokens back).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from httpload import start_pinned

_CONFIG = """\
worker_processes 1;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 64m;
    # The load generator keeps one connection for thousands of requests; nginx closes one after
    # 1,000 by default (and so would its upstream pool).
    keepalive_requests 1000000000;
    upstream replica {{
        server 127.0.0.1:{upstream};
        keepalive 128;
        keepalive_requests 1000000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://replica;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 300s;
        }}
    }}
}}
"""


def nginx_missing() -> str | None:
    """Why nginx cannot be measured here, or None when it can."""
    if shutil.which("nginx") is None:
        return "nginx is not installed (tools/nginx/install.sh installs Debian's package)"
    return None


def start_nginx(port: int, upstream: int, workdir: Path, core: int) -> subprocess.Popen[bytes]:
    """nginx on `port` in front of 127.0.0.1:`upstream`, pinned to `core`; returns once it accepts."""
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o777)  # a root master's worker runs as nobody and writes its temp files here
    config = workdir / "nginx.conf"
    config.write_text(_CONFIG.format(dir=workdir, port=port, upstream=upstream))
    return start_pinned([shutil.which("nginx") or "nginx", "-c", str(config), "-p", str(workdir)], port, core,
                        "nginx")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its children (nginx's master and its worker)."""
    from httpload import cpu_seconds

    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                pids.append(int(entry.name))
    total = 0.0
    for p in pids:
        try:
            total += cpu_seconds(p)
        except OSError:
            pass
    return total
