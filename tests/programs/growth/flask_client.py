"""The load for flask_app.py: N requests to GET /work on loopback with
urllib, one every INTERVAL seconds.

usage: flask_client.py PORT [N=40] [INTERVAL=0.075]"""
import sys
import time
import urllib.request


def main():
    port = int(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 0.075
    start = time.monotonic()
    for i in range(n):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/work", timeout=10) as r:
            r.read()
        # Keep the schedule (not the gap): request i at start + i * interval.
        delay = start + (i + 1) * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    print(f"sent {n} requests in {time.monotonic() - start:.2f} s")


if __name__ == "__main__":
    main()
