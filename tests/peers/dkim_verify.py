"""Verifies a message's DKIM signature with dkimpy, taking the key record from the command
line instead of DNS. Exits 0 when the signature verifies, 1 (with dkimpy's reason) when not.

usage: python3 dkim_verify.py MESSAGE_FILE 'v=DKIM1; k=rsa; p=…'"""

import logging
import sys

import dkim


def main():
    message = open(sys.argv[1], "rb").read()
    record = sys.argv[2].encode()
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    ok = dkim.verify(message, logger=logging.getLogger("dkim"), dnsfunc=lambda name, timeout=5: record)
    print("pass" if ok else "fail")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
