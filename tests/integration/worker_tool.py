# SPDX-License-Identifier: MIT
"""Helper for the worker integration tests, using only the standard library.

It speaks just enough msgpack and RESP to add a hand-made probe item to the
probes stream and to read result and domain keys back as JSON, so the tests
need neither the coordinator nor a msgpack package.

  worker_tool.py xadd-probe PORT STREAM ITEM_JSON   prints the entry id
  worker_tool.py get-result PORT KEY                prints the result as JSON
  worker_tool.py cmd PORT ARG...                    prints the reply as JSON
  worker_tool.py move-delayed PORT DELAYED STREAM   moves every delayed item
                                                    to STREAM, prints how many
  worker_tool.py delayed-item PORT DELAYED          prints the first delayed
                                                    item as JSON
"""
import json
import socket
import struct
import sys


def pack(obj):
    """Encodes obj as msgpack, with strings as str (never bin)."""
    if obj is None:
        return b"\xc0"
    if obj is True:
        return b"\xc3"
    if obj is False:
        return b"\xc2"
    if isinstance(obj, int):
        if 0 <= obj < 128:
            return bytes([obj])
        return b"\xd3" + struct.pack(">q", obj)
    if isinstance(obj, str):
        data = obj.encode()
        if len(data) < 32:
            return bytes([0xA0 | len(data)]) + data
        return b"\xda" + struct.pack(">H", len(data)) + data
    if isinstance(obj, list):
        out = b"\xdc" + struct.pack(">H", len(obj))
        return out + b"".join(pack(x) for x in obj)
    if isinstance(obj, dict):
        out = b"\xde" + struct.pack(">H", len(obj))
        for key, value in obj.items():
            out += pack(key) + pack(value)
        return out
    raise TypeError(f"cannot pack {type(obj).__name__}")


def unpack(data, pos=0):
    """Decodes one msgpack value at pos; returns (value, next position)."""
    b = data[pos]
    pos += 1
    fixed = {0xC0: None, 0xC2: False, 0xC3: True}
    if b in fixed:
        return fixed[b], pos
    if b < 0x80:
        return b, pos
    if b >= 0xE0:
        return b - 0x100, pos
    if 0xA0 <= b <= 0xBF:
        n = b & 0x1F
        return data[pos:pos + n].decode(), pos + n
    if 0x90 <= b <= 0x9F:
        return unpack_array(data, pos, b & 0x0F)
    if 0x80 <= b <= 0x8F:
        return unpack_map(data, pos, b & 0x0F)
    ints = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
            0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
    if b in ints:
        size = struct.calcsize(ints[b])
        return struct.unpack(ints[b], data[pos:pos + size])[0], pos + size
    strs = {0xD9: ">B", 0xDA: ">H", 0xDB: ">I"}
    if b in strs:
        size = struct.calcsize(strs[b])
        n = struct.unpack(strs[b], data[pos:pos + size])[0]
        pos += size
        return data[pos:pos + n].decode(), pos + n
    if b in (0xDC, 0xDD):
        fmt = ">H" if b == 0xDC else ">I"
        size = struct.calcsize(fmt)
        n = struct.unpack(fmt, data[pos:pos + size])[0]
        return unpack_array(data, pos + size, n)
    if b in (0xDE, 0xDF):
        fmt = ">H" if b == 0xDE else ">I"
        size = struct.calcsize(fmt)
        n = struct.unpack(fmt, data[pos:pos + size])[0]
        return unpack_map(data, pos + size, n)
    raise ValueError(f"unsupported msgpack byte 0x{b:02x}")


def unpack_array(data, pos, n):
    out = []
    for _ in range(n):
        value, pos = unpack(data, pos)
        out.append(value)
    return out, pos


def unpack_map(data, pos, n):
    out = {}
    for _ in range(n):
        key, pos = unpack(data, pos)
        value, pos = unpack(data, pos)
        out[key] = value
    return out, pos


class Resp:
    """A minimal blocking Redis client: one command, one reply."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", int(port)), 5)
        self.buf = b""

    def command(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            if isinstance(arg, str):
                arg = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
        self.sock.sendall(b"".join(parts))
        return self.reply()

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError(f"unexpected RESP line {line!r}")


def to_json(value):
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


def main(argv):
    if len(argv) >= 5 and argv[1] == "xadd-probe":
        item = json.loads(argv[4])
        r = Resp(argv[2])
        print(r.command("XADD", argv[3], "*", "item", pack(item)).decode())
        return 0
    if len(argv) == 4 and argv[1] == "get-result":
        blob = Resp(argv[2]).command("GET", argv[3])
        if blob is None:
            return 1
        print(json.dumps(unpack(blob)[0], sort_keys=True))
        return 0
    if len(argv) == 5 and argv[1] == "move-delayed":
        r = Resp(argv[2])
        members = r.command("ZRANGE", argv[3], "0", "-1")
        for member in members:
            r.command("XADD", argv[4], "*", "item", member)
            r.command("ZREM", argv[3], member)
        print(len(members))
        return 0
    if len(argv) == 4 and argv[1] == "delayed-item":
        members = Resp(argv[2]).command("ZRANGE", argv[3], "0", "0")
        if not members:
            return 1
        print(json.dumps(unpack(members[0])[0], sort_keys=True))
        return 0
    if len(argv) >= 4 and argv[1] == "cmd":
        print(json.dumps(to_json(Resp(argv[2]).command(*argv[3:]))))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
