#!/usr/bin/env python3
"""A real SMTP server for weir's tests, built on aiosmtpd.

Each accepted message is written to DIR/<n>.eml (the raw message as received) and DIR/<n>.json
(the envelope: sender, recipients, the authenticated user, whether the session was encrypted),
the .eml last and atomically, so a reader never sees half a message. Prints `READY` on stdout
once the server answers. Stops on SIGTERM or when stdin closes.

  smtp_sink.py --dir DIR --port PORT [--tls none|starttls|implicit --cert C --key K]
               [--user U --password P] [--fail-first N]

--fail-first N answers the first N messages with `451 4.3.0` (a temporary refusal), to test
retries. With --user, AUTH is required (and with TLS, only after TLS).
"""

import argparse
import json
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--fail-first", type=int, default=0)
    args = p.parse_args()

    lock = threading.Lock()
    state = {"seen": 0, "stored": 0}

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            with lock:
                state["seen"] += 1
                if state["seen"] <= args.fail_first:
                    return "451 4.3.0 try again later"
                state["stored"] += 1
                n = state["stored"]
            meta = {
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "user": getattr(session, "sink_user", None),
                "encrypted": session.ssl is not None
                or server.transport.get_extra_info("ssl_object") is not None,
            }
            base = os.path.join(args.dir, str(n))
            with open(base + ".json", "w") as f:
                json.dump(meta, f)
            with open(base + ".tmp", "wb") as f:
                f.write(envelope.original_content or envelope.content)
            os.rename(base + ".tmp", base + ".eml")
            return "250 OK message accepted"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == args.user.encode()
            and auth_data.password == args.password.encode()
        )
        if ok:
            session.sink_user = args.user
        return AuthResult(success=ok, handled=False)

    context = None
    if args.tls != "none":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)

    kwargs = {}
    if args.user:
        kwargs.update(
            authenticator=authenticator,
            auth_required=True,
            # With implicit TLS every session is encrypted, but aiosmtpd only counts STARTTLS.
            auth_require_tls=args.tls == "starttls",
        )
    if args.tls == "starttls":
        kwargs.update(tls_context=context, require_starttls=True)
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=args.port,
        ssl_context=context if args.tls == "implicit" else None,
        server_hostname="localhost",
        ready_timeout=10,
        **kwargs,
    )
    controller.start()
    print("READY", flush=True)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    controller.stop()


if __name__ == "__main__":
    main()
