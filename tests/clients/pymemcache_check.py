"""Exercises a memcached-compatible server with the pymemcache client library.

Usage: python3 pymemcache_check.py HOST:PORT

Every operation's result is asserted; the script exits 0 only if all checks pass.
"""

import sys

from pymemcache.client.base import Client


def check(label, actual, expected):
    if actual != expected:
        raise AssertionError(f"{label}: expected {expected!r}, got {actual!r}")
    print(f"ok   {label}")


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    client = Client(
        (host, int(port)),
        connect_timeout=30,
        timeout=30,
        default_noreply=False,
    )

    check("flush_all", client.flush_all(), True)

    # set / get / delete
    check("set", client.set("alpha", b"one"), True)
    check("get hit", client.get("alpha"), b"one")
    check("get miss", client.get("nope"), None)
    check("get default", client.get("nope", default=b"dflt"), b"dflt")
    check("set with flags", client.set("flagged", b"x", flags=42), True)
    check("get flagged", client.get("flagged"), b"x")
    check("set binary value", client.set("bin", bytes(range(256))), True)
    check("get binary value", client.get("bin"), bytes(range(256)))
    check("set empty value", client.set("empty", b""), True)
    check("get empty value", client.get("empty"), b"")
    big = b"v" * 500_000
    check("set 500 kB value", client.set("big", big), True)
    check("get 500 kB value", client.get("big"), big)
    check("delete hit", client.delete("alpha"), True)
    check("delete miss", client.delete("alpha"), False)
    check("get after delete", client.get("alpha"), None)

    # noreply variants still take effect
    client.set("quiet", b"q", noreply=True)
    check("get after noreply set", client.get("quiet"), b"q")

    # add / replace
    check("add new", client.add("beta", b"b1"), True)
    check("add existing", client.add("beta", b"b2"), False)
    check("get after add", client.get("beta"), b"b1")
    check("replace existing", client.replace("beta", b"b3"), True)
    check("replace missing", client.replace("missing", b"m"), False)
    check("get after replace", client.get("beta"), b"b3")
    check("get replaced-missing", client.get("missing"), None)

    # append / prepend
    check("append", client.append("beta", b"-tail"), True)
    check("prepend", client.prepend("beta", b"head-"), True)
    check("get after append/prepend", client.get("beta"), b"head-b3-tail")
    check("append missing", client.append("missing", b"x"), False)
    check("prepend missing", client.prepend("missing", b"x"), False)

    # gets / cas
    value, token = client.gets("beta")
    check("gets value", value, b"head-b3-tail")
    if not isinstance(token, bytes) or not token.isdigit():
        raise AssertionError(f"gets cas token is not numeric: {token!r}")
    print("ok   gets token numeric")
    check("cas fresh token", client.cas("beta", b"swapped", token), True)
    check("get after cas", client.get("beta"), b"swapped")
    check("cas stale token", client.cas("beta", b"again", token), False)
    check("get after stale cas", client.get("beta"), b"swapped")
    check("cas missing key", client.cas("missing", b"x", token), None)
    check("gets miss", client.gets("missing"), (None, None))

    # incr / decr
    check("set counter", client.set("counter", b"10"), True)
    check("incr", client.incr("counter", 5), 15)
    check("decr", client.decr("counter", 3), 12)
    check("decr below zero clamps", client.decr("counter", 100), 0)
    check("incr from 0", client.incr("counter", 10), 10)
    # 64-bit wrap-around, starting below 2**63: memcached 1.6.18 answers incr/decr on a
    # stored value >= 2**63 nondeterministically, so that case is not checked here.
    check("incr wraps", client.incr("counter", 2**64 - 5), 5)
    check("incr missing", client.incr("nocounter", 1), None)
    check("decr missing", client.decr("nocounter", 1), None)
    check("set 100", client.set("hundred", b"100"), True)
    check("decr 100 by 1", client.decr("hundred", 1), 99)
    check("value after length-shrinking decr", client.get("hundred").rstrip(b" "), b"99")
    check("set text", client.set("text", b"abc"), True)
    try:
        client.incr("text", 1)
    except Exception as error:  # pymemcache raises MemcacheClientError here
        if "non-numeric" not in str(error):
            raise AssertionError(f"incr on text: unexpected error {error!r}")
        print("ok   incr on non-numeric value is a client error")
    else:
        raise AssertionError("incr on a non-numeric value did not fail")

    # touch
    check("touch hit", client.touch("beta", 3600), True)
    check("touch miss", client.touch("missing", 3600), False)
    check("get after touch", client.get("beta"), b"swapped")
    check("set expired", client.set("gone", b"x", expire=-1), True)
    check("negative expiry is immediately gone", client.get("gone"), None)

    # set_many / get_many / delete_many
    items = {f"many{i}": f"value{i}".encode() for i in range(20)}
    check("set_many", client.set_many(items), [])
    check("get_many", client.get_many(list(items) + ["absent"]), items)
    check("get_many none", client.get_many(["absent1", "absent2"]), {})
    check("delete_many", client.delete_many(list(items)[:10]), True)
    remaining = client.get_many(list(items))
    check("get_many after delete_many", remaining, dict(list(items.items())[10:]))

    # flush_all empties the cache
    check("flush_all again", client.flush_all(), True)
    check("get after flush_all", client.get("beta"), None)
    check("get_many after flush_all", client.get_many(list(items)), {})

    # version and stats answer
    version = client.version()
    if not version:
        raise AssertionError("empty version")
    print(f"ok   version {version!r}")
    stats = client.stats()
    if b"curr_items" not in stats and "curr_items" not in stats:
        raise AssertionError(f"stats lacks curr_items: {sorted(stats)!r}")
    print("ok   stats has curr_items")

    client.close()
    print("pymemcache checks: all passed")


if __name__ == "__main__":
    main()
