# apps-work.py - the Python program that bench/apps.sh times.
#
#   python3 apps-work.py [N]      N records (default 300000)
#
# Run with PYTHONMALLOC=malloc, every object Python makes comes from
# malloc: this builds many small dicts, lists and strings, indexes them,
# turns them into JSON and back, sorts them, and lets most of them go, so
# that the allocator sees what a typical data-shuffling script asks of it.
# It prints digests of its results, which must not depend on the allocator.
#
# SPDX-License-Identifier: MIT
import collections
import hashlib
import json
import random
import sys

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
         "hotel", "india", "juliett", "kilo", "lima", "mike", "november",
         "oscar", "papa", "quebec", "romeo", "sierra", "tango"]


def make_records(n, rng):
    records = []
    for i in range(n):
        k = rng.randrange(1, 6)
        records.append({
            "id": i,
            "name": "user%06d" % rng.randrange(1000000),
            "tags": [WORDS[rng.randrange(len(WORDS))] for _ in range(k)],
            "score": rng.randrange(1000000) / 1000.0,
            "address": {"street": "%d %s road" % (i % 977, WORDS[i % 20]),
                        "zip": "%05d" % (i * 7 % 100000)},
        })
    return records


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300000
    rng = random.Random(20240613)
    digest = hashlib.sha256()

    records = make_records(n, rng)

    # Indexes: dicts of lists, grown one item at a time.
    by_tag = collections.defaultdict(list)
    by_prefix = collections.Counter()
    for r in records:
        for t in r["tags"]:
            by_tag[t].append(r["id"])
        by_prefix[r["name"][:6]] += 1
    for t in sorted(by_tag):
        digest.update(("%s=%d;" % (t, len(by_tag[t]))).encode())
    digest.update(str(by_prefix.most_common(5)).encode())

    # JSON in batches, as a service answering requests would: each batch
    # is written, read back and dropped.
    size = 0
    for start in range(0, n, 2000):
        text = json.dumps(records[start:start + 2000], sort_keys=True)
        back = json.loads(text)
        size += len(text)
        digest.update(str(sum(len(r["tags"]) for r in back)).encode())
    del back

    # Rebuild every record with a new shape, dropping the old ones.
    records = [{"key": (r["name"], r["id"]), "score": r["score"],
                "street": r["address"]["street"].split(" ")}
               for r in records]
    records.sort(key=lambda r: (r["score"], r["key"]))
    digest.update(json.dumps(records[:100]).encode())
    words = " ".join(" ".join(r["street"]) for r in records[::7]).split()
    digest.update(str(collections.Counter(words).most_common(3)).encode())

    print("records", n, "json bytes", size)
    print("digest", digest.hexdigest())


if __name__ == "__main__":
    main()
