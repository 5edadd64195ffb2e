#!/usr/bin/python3
"""Keystone helpers for tempest/run.sh (Debian's python3-keystone 22).

  ksctl.py serve CONFIG PORT
      Serve Keystone's WSGI application on 127.0.0.1:PORT, one thread per
      request (tempest and moat call it concurrently; Debian's
      keystone-wsgi-public serves one request at a time).
  ksctl.py register-network KEYSTONE_URL ENDPOINT
      As the bootstrap admin: register the 'network' service with a
      public, internal and admin endpoint at ENDPOINT in RegionOne, so that
      tempest finds moat through the catalog as it finds Neutron.
  ksctl.py extensions KEYSTONE_URL NEUTRON_URL
      Print the comma-separated aliases NEUTRON_URL lists at
      GET /v2.0/extensions (asked with an admin token): tempest's
      api_extensions, so that tests of unlisted extensions are skipped as in a
      devstack gate.

The admin is the one `keystone-manage bootstrap` creates in run.sh:
admin/admin-pass, project admin, domain Default.
"""
import json
import os
import socketserver
import sys
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

ADMIN = {"name": "admin", "domain": {"name": "Default"}, "password": "admin-pass"}
REGION = "RegionOne"


class ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass  # Keystone logs every request to its own log file already


def serve(config, port):
    os.environ["OS_KEYSTONE_CONFIG_FILES"] = config
    sys.argv = sys.argv[:1]  # oslo.config would parse ours as its own
    from keystone.server.wsgi import initialize_public_application
    app = initialize_public_application()
    make_server("127.0.0.1", int(port), app, server_class=ThreadingServer,
                handler_class=QuietHandler).serve_forever()


def call(method, url, token=None, body=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Auth-Token"] = token
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(req, timeout=60) as resp:
        raw = resp.read()
        return resp.headers, (json.loads(raw) if raw else None)


def admin_token(keystone):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": ADMIN}},
                     "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
    headers, _ = call("POST", keystone + "/auth/tokens", body=body)
    return headers["X-Subject-Token"]


def register_network(keystone, endpoint):
    tok = admin_token(keystone)
    _, svc = call("POST", keystone + "/services", tok,
                  {"service": {"type": "network", "name": "neutron",
                               "description": "moat, as the Networking service"}})
    for iface in ("public", "internal", "admin"):
        call("POST", keystone + "/endpoints", tok,
             {"endpoint": {"service_id": svc["service"]["id"], "interface": iface,
                           "region_id": REGION, "url": endpoint}})


def extensions(keystone, neutron):
    tok = admin_token(keystone)
    _, body = call("GET", neutron + "/v2.0/extensions", tok)
    print(",".join(sorted(e["alias"] for e in body["extensions"])))


def main(argv):
    cmds = {"serve": serve, "register-network": register_network, "extensions": extensions}
    if len(argv) != 4 or argv[1] not in cmds:
        sys.exit(__doc__)
    args = argv[2:]
    if argv[1] != "serve":
        args = [a.rstrip("/") for a in args]
    cmds[argv[1]](*args)


if __name__ == "__main__":
    main(sys.argv)
