#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/corpus/<target>/: real requests of every command of
the text, meta and binary protocols, in the shape each target expects (see src/lib.rs)."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

TEXT = [
    b"set a 0 0 1\r\nx\r\n", b"set a 5 100 3 noreply\r\nabc\r\n", b"add b 0 0 2\r\nhi\r\n",
    b"replace a 0 0 1\r\ny\r\n", b"append a 0 0 1\r\nz\r\n", b"prepend a 0 0 1\r\nw\r\n",
    b"cas a 0 0 1 1\r\nq\r\n", b"get a\r\n", b"get a b c\r\n", b"gets a\r\n", b"bget a\r\n",
    b"gat 10 a\r\n", b"gats 10 a b\r\n", b"incr n 5\r\n", b"decr n 2 noreply\r\n",
    b"delete a\r\n", b"delete a 0 noreply\r\n", b"touch a 10\r\n", b"flush_all\r\n",
    b"flush_all 10 noreply\r\n", b"verbosity 1\r\n", b"stats\r\n", b"stats settings\r\n",
    b"stats items\r\n", b"stats slabs\r\n", b"stats reset\r\n", b"version\r\n", b"quit\r\n",
    b"shutdown\r\n", b"set big 0 0 5000\r\n" + b"v" * 5000 + b"\r\n", b"set k 0 0 1\r\nxy\r\n",
    b"get " + b"k" * 251 + b"\r\n", b"bogus\r\n", b"\r\n", b"set a 0 0 4294967296\r\n",
    b"set a 0 0 18446744073709551615\r\n", b"get " + b"key " * 900 + b"\r\n",
]
META = [
    b"mg a v f t k c s h l O1 q\r\n", b"mg a\r\n", b"mg YQ== b v k\r\n", b"mg a T30 N30 R10 v\r\n",
    b"ms a 3 T0 F5 c I\r\nabc\r\n", b"ms a 2 MA q\r\nhi\r\n", b"ms a 1 MS C1 E5\r\nx\r\n",
    b"ms a S2\r\nxx\r\n", b"md a q\r\n", b"md a I T30 C1\r\n", b"ma n\r\n",
    b"ma n MI D5 N0 J7 v t c\r\n", b"ma n MD q O9\r\n", b"mn\r\n", b"me a\r\n",
    b"mg " + b"k" * 300 + b"\r\n", b"ms a 99999999\r\n",
]
TEXT_ALL = TEXT + META


def meta_shape(line):
    """The meta_parse form of a meta line: its command replaced by the selector byte."""
    cmds = [b"mg ", b"ms ", b"md ", b"ma ", b"mn", b"me ", b"mg", b"ms"]
    for i, c in enumerate(cmds):
        if line.startswith(c):
            return bytes([i]) + line[len(c):]
    raise ValueError(line)


def bin_req(opcode, key=b"", extras=b"", value=b"", opaque=7, cas=0, body=None):
    total = len(extras) + len(key) + len(value) if body is None else body
    return struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(extras), 0, 0, total,
                       opaque, cas) + extras + key + value


BINARY = [
    bin_req(0x01, b"a", struct.pack(">II", 5, 0), b"val"),  # set
    bin_req(0x02, b"b", struct.pack(">II", 0, 0), b"v"),  # add
    bin_req(0x03, b"a", struct.pack(">II", 0, 0), b"r"),  # replace
    bin_req(0x00, b"a"), bin_req(0x09, b"a"), bin_req(0x0c, b"a"), bin_req(0x0d, b"a"),
    bin_req(0x04, b"a"), bin_req(0x14, b"a"),  # delete, deleteq
    bin_req(0x05, b"n", struct.pack(">QQI", 1, 0, 0)), bin_req(0x06, b"n", struct.pack(">QQI", 1, 0, 0)),
    bin_req(0x15, b"n", struct.pack(">QQI", 1, 5, 0xffffffff)),
    bin_req(0x07), bin_req(0x17), bin_req(0x08), bin_req(0x08, extras=struct.pack(">I", 10)),
    bin_req(0x0a), bin_req(0x0b), bin_req(0x10), bin_req(0x10, b"settings"),
    bin_req(0x0e, b"a", value=b"x"), bin_req(0x0f, b"a", value=b"x"),
    bin_req(0x19, b"a", value=b"x"), bin_req(0x1a, b"a", value=b"x"),
    bin_req(0x1c, b"a", struct.pack(">I", 10)), bin_req(0x1d, b"a", struct.pack(">I", 10)),
    bin_req(0x1e, b"a", struct.pack(">I", 10)), bin_req(0x23, b"a", struct.pack(">I", 10)),
    bin_req(0x20), bin_req(0x21, b"PLAIN", value=b"\0u\0p"),
    bin_req(0x01, b"a", struct.pack(">II", 0, 0), body=0xffffffff),
    bin_req(0x55, b"a", body=1 << 31), bin_req(0x00, b"a" * 300),
    bin_req(0x01, b"big", struct.pack(">II", 0, 0), b"v" * 5000),
]


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    for i, req in enumerate(TEXT_ALL):
        write("text_parse", f"seed-{i:03}", b"\x07" + req)
        write("connection", f"text-{i:03}", b"\x80" + b"set a 0 0 1\r\n1\r\n" + req + b"get a\r\n")
    write("text_parse", "seed-all", b"\x3f" + b"".join(TEXT_ALL))
    write("connection", "text-all", b"\x05" + b"".join(TEXT_ALL))
    for i, req in enumerate(META):
        write("meta_parse", f"seed-{i:03}", b"\x07" + meta_shape(req))
    write("meta_parse", "seed-all", b"\x01" + b"".join(meta_shape(r) for r in META))
    for i, req in enumerate(BINARY):
        # binary_parse forces the second byte (the first of the packet) to the magic.
        write("binary_parse", f"seed-{i:03}", b"\x07" + req)
        write("connection", f"binary-{i:03}", b"\x81" + BINARY[0] + req + BINARY[3])
    write("binary_parse", "seed-all", b"\x3f" + b"".join(BINARY[:-4]))
    write("connection", "binary-all", b"\x03" + b"".join(BINARY[:-4]))


if __name__ == "__main__":
    main()
