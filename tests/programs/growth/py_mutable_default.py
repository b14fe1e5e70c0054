"""The mutable default argument: `remember(record, seen=[])` appends to the
same list on every call. 5,000 calls over ~1.5 s (a 3 ms sleep every 10
calls), each with some request churn (a JSON round trip): growing, the
append line first."""
import json
import time


def make_record(i):
    return {"id": i, "path": f"/item/{i}", "agent": "client/1.0 " + "x" * 120}


def remember(record, seen=[]):
    seen.append(record)  # @site:mutable_default
    return len(seen)


def handle(i):
    body = json.dumps(make_record(i))  # churn: freed when the request ends
    record = json.loads(body)
    return remember(record)


def main():
    n = 0
    for i in range(5000):
        n = handle(i)
        if i % 10 == 9:
            time.sleep(0.003)
    print("remembered", n)


if __name__ == "__main__":
    main()
