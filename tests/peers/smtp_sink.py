"""An SMTP sink for the e-mail tests (aiosmtpd): keeps each message's bytes exactly as
received, one file per message, and plays a relay that refuses some recipients:
`bounce…@` is refused for good (550), `busy…@` for now (451).

usage: python3 smtp_sink.py PORT FOLDER"""

import pathlib
import signal
import sys

from aiosmtpd.controller import Controller


class Keep:
    def __init__(self, folder):
        self.folder = pathlib.Path(folder)
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if local.startswith("bounce"):
            return "550 5.1.1 no such mailbox here"
        if local.startswith("busy"):
            return "451 4.3.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        name = f"{self.count:06}.eml"
        partial = self.folder / (name + ".part")
        partial.write_bytes(envelope.original_content)
        partial.rename(self.folder / name)
        return f"250 2.0.0 queued as {name}"


def main():
    port, folder = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Keep(folder), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()


if __name__ == "__main__":
    main()
