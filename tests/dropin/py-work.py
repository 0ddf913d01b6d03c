# py-work.py - a Python workload for tests/t-dropin.sh.
#
# With PYTHONMALLOC=malloc every Python object comes from malloc, so this
# builds, sorts and serialises enough of them to exercise the allocator
# from small strings to multi-megabyte buffers, and prints digests that do
# not depend on which allocator served them.
#
# SPDX-License-Identifier: MIT
import hashlib
import json
import sys


def word(i):
    h = hashlib.blake2b(str(i).encode(), digest_size=16).hexdigest()
    return h[: 4 + i % 28] * (1 + (i % 7 == 0) * 40)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
    table = {}
    for i in range(n):
        table[word(i)] = [i, str(i * 3), {"k": word(i * 7 + 1)[:9]}]
    words = sorted(table, key=lambda w: (len(w), w))
    print("entries", len(table), "longest", len(words[-1]))

    text = json.dumps(table, sort_keys=True)
    back = json.loads(text)
    print("json", len(text), hashlib.sha256(text.encode()).hexdigest())
    print("round trip", back == table)

    # Lists of strings that grow, shrink and are joined.
    parts = [w.upper() for w in words if len(w) % 3]
    parts.sort(reverse=True)
    joined = "|".join(parts)
    del parts[::2]
    print("parts", len(parts), hashlib.sha256(joined.encode()).hexdigest())

    # Big buffers grown by repeated concatenation.
    buf = bytearray()
    for w in words[:50000]:
        buf += w.encode()
    print("buffer", len(buf), hashlib.sha256(bytes(buf)).hexdigest())
    return 0 if back == table else 1


if __name__ == "__main__":
    sys.exit(main())
