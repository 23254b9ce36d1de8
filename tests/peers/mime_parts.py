"""Reads a message with Python's own MIME parser, as a mail client would, and prints its
decoded subject, headers, text and HTML parts as JSON.

usage: python3 mime_parts.py MESSAGE_FILE"""

import email
import email.policy
import json
import sys


def main():
    message = email.message_from_bytes(open(sys.argv[1], "rb").read(), policy=email.policy.default)
    parts = {"subject": str(message["subject"]), "from": str(message["from"]),
             "headers": {k: str(v) for k, v in message.items()}, "text": None, "html": None}
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            parts["text"] = part.get_content()
        elif part.get_content_type() == "text/html":
            parts["html"] = part.get_content()
    print(json.dumps(parts, ensure_ascii=False))


if __name__ == "__main__":
    main()
