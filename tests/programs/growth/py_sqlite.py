"""sqlite3 inserts into an in-memory database: 200 batches of 200 rows
(~130 bytes each) with a 8 ms sleep between batches (~2 s). The database
lives in the heap (sqlite's page cache for :memory: is never evicted):
growing, the database is the growth."""
import sqlite3
import time


def main():
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT, payload TEXT)")
    for batch in range(200):
        rows = [(batch * 200 + i, f"kind-{i % 7}", f"payload {batch:04d}-{i:04d} " + "y" * 100)
                for i in range(200)]
        db.executemany("INSERT INTO events VALUES (?, ?, ?)", rows)  # @site:sqlite_insert
        db.commit()
        time.sleep(0.008)
    (n,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
    print("rows", n)
    db.close()


if __name__ == "__main__":
    main()
