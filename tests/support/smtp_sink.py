"""An aiosmtpd handler for tests/smtp.rs: keeps every message it accepts in a directory.

Run by the tests as

    PYTHONPATH=tests/support python3 -m aiosmtpd -n -l 127.0.0.1:PORT \
        -c smtp_sink.Sink DIRECTORY [deliver|refuse|refuse-data|stall]

- deliver: accept every message; write it as NNNN.eml (the bytes received) and NNNN.json
  (the envelope, and the message as Python's `email` package parses it: headers, MIME
  structure, decoded parts, defects). The JSON file appears last, whole (written, then
  renamed), before the server answers 250.
- refuse: answer every recipient with 550, so no message is ever accepted.
- refuse-data: accept the recipients and take the message, then refuse it with 554.
- stall: accept the recipients, then never answer the message (a hung server).

A file DIRECTORY/mode, if present, overrides the mode for the next message on (a test
switches a running server between refusing and delivering). Every recipient the server is
asked for, accepted or not, is a line of DIRECTORY/rcpt.log: the attempts to send.

The server exits by itself when the process that started it goes away.
"""

import asyncio
import email
import email.policy
import json
import os
import threading
import time


def _parts(message):
    parts = []
    for part in message.walk():
        if part.is_multipart():
            continue
        parts.append(
            {
                "content_type": part.get_content_type(),
                "charset": part.get_content_charset(),
                "transfer_encoding": part.get("Content-Transfer-Encoding"),
                "content": part.get_content(),
                "defects": [type(d).__name__ for d in part.defects],
            }
        )
    return parts


MODES = ("deliver", "refuse", "refuse-data", "stall")


class Sink:
    def __init__(self, directory, mode="deliver"):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.directory = directory
        self.mode = mode
        self.count = 0
        parent = os.getppid()

        def watchdog():
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(0)

        threading.Thread(target=watchdog, daemon=True).start()

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) not in (1, 2):
            parser.error("smtp_sink.Sink takes DIRECTORY [" + "|".join(MODES) + "]")
        return cls(*args)

    def current_mode(self):
        try:
            with open(os.path.join(self.directory, "mode"), encoding="utf-8") as f:
                mode = f.read().strip()
        except FileNotFoundError:
            return self.mode
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} in the mode file")
        return mode

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with open(os.path.join(self.directory, "rcpt.log"), "a", encoding="utf-8") as f:
            f.write(address + "\n")
        if self.current_mode() == "refuse":
            return "550 5.7.1 Recipient refused by the test server"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        mode = self.current_mode()
        if mode == "stall":
            await asyncio.sleep(3600)
        if mode == "refuse-data":
            return "554 5.6.0 Message refused by the test server"
        self.count += 1
        raw = envelope.original_content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        summary = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            # Under STARTTLS or implicit TLS alike, the transport is a TLS one.
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "headers": {k.lower(): str(v) for k, v in message.items()},
            "content_type": message.get_content_type(),
            "defects": [type(d).__name__ for d in message.defects],
            "parts": _parts(message),
        }
        name = os.path.join(self.directory, f"{self.count:04d}")
        with open(name + ".eml", "wb") as f:
            f.write(raw)
        with open(name + ".json.tmp", "w", encoding="utf-8") as f:
            json.dump(summary, f, ensure_ascii=False, indent=1)
        os.rename(name + ".json.tmp", name + ".json")
        return "250 Message accepted for delivery"
