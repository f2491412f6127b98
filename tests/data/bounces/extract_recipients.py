#!/usr/bin/env python3
"""extract_recipients — fills the `recipient` column of labels.tsv.

An extraction independent of the C++ parser (Python's own `email` package,
no code shared with bounce/dsn/), so that bench/dsn_accuracy can check the
addresses the parser reports, not only how many. Per message, in order:

1. the per-recipient groups of every message/delivery-status part (RFC 3464
   2.3; and RFC 6533's message/global-delivery-status, the same fields):
   Final-Recipient, else Original-Recipient, without the "rfc822;" type;
   a value that is not an address (one "@" between a local part and a
   domain: not a file path, "@host" alone or a source route) counts as
   absent;
2. if there are none, Original-Rcpt-To of every message/feedback-report
   part (RFC 5965 3.2);
3. if there are none, the addresses of the X-Failed-Recipients header
   (Exim's).

Row N of a message (the `record` column) gets the N-th address; a row is
left empty where there is no N-th address, and a message none of these
finds has only empty rows (dsn_accuracy falls back on a count for those).

    python3 tests/data/bounces/extract_recipients.py          # rewrites labels.tsv
    python3 tests/data/bounces/extract_recipients.py --check  # exit 1 if it would change
"""
import email
import email.policy
import email.utils
import re
import sys
from email.parser import HeaderParser
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLUMNS = ["file", "record", "status", "reply_code", "reason", "hard", "feedback_type", "recipient"]


def strip_type(value):
    """'rfc822; <a@b>' -> 'a@b' (RFC 3464 2.3.2: address-type ";" address)."""
    value = " ".join(str(value).split())
    if ";" in value:
        value = value.split(";", 1)[1]
    value = value.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    return value


def is_address(value):
    return re.fullmatch(r"[^@\s]+@[^@\s]+", value) is not None


def header_blocks(part):
    """The groups of a report part as lists of (name, value), whatever the
    email package made of them: a list of sub-messages for
    message/delivery-status, or text (when transfer-encoded, or for
    message/feedback-report)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [list(block.items()) for block in payload if hasattr(block, "items")]
    raw = part.get_payload(decode=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
    text = text.replace("\r\n", "\n")
    return [list(HeaderParser().parsestr(chunk).items()) for chunk in text.split("\n\n") if chunk.strip()]


def addresses(message):
    dsn, arf = [], []
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            for block in header_blocks(part):
                fields = {}
                for name, value in block:
                    fields.setdefault(name.lower(), strip_type(value))
                for name in ("final-recipient", "original-recipient"):
                    if is_address(fields.get(name, "")):
                        dsn.append(fields[name])
                        break
        elif ctype == "message/feedback-report":
            for block in header_blocks(part):
                for name, value in block:
                    if name.lower() == "original-rcpt-to" and is_address(strip_type(value)):
                        arf.append(strip_type(value))
    if dsn:
        return dsn
    if arf:
        return arf
    failed = message.get_all("X-Failed-Recipients") or []
    return [a for _, a in email.utils.getaddresses([str(v) for v in failed]) if is_address(a)]


def main():
    check = "--check" in sys.argv[1:]
    labels = HERE / "labels.tsv"
    lines = labels.read_text(encoding="utf-8").splitlines()
    found = {}
    out = ["\t".join(COLUMNS)]
    for line in lines[1:]:
        row = line.split("\t")
        row = (row + [""] * len(COLUMNS))[: len(COLUMNS) - 1]  # drop an old recipient column
        name, record = row[0], int(row[1] or 1)
        if name not in found:
            with open(HERE / "dev" / name, "rb") as f:
                found[name] = addresses(email.message_from_binary_file(f, policy=email.policy.compat32))
        got = found[name]
        row.append(got[record - 1] if record <= len(got) else "")
        out.append("\t".join(row))
    text = "\n".join(out) + "\n"
    if check:
        same = labels.read_text(encoding="utf-8") == text
        print("labels.tsv is up to date" if same else "labels.tsv would change")
        return 0 if same else 1
    labels.write_text(text, encoding="utf-8")
    rows = len(out) - 1
    filled = sum(1 for r in out[1:] if r.split("\t")[-1])
    print(f"labels.tsv: {filled} of {rows} rows have a recipient")
    return 0


if __name__ == "__main__":
    sys.exit(main())
