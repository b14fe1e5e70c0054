-- sqlite3 :memory: ".read scripts/bench/sqlite.sql": a 20,000-row insert and an index,
-- compared between leakhunt, valgrind and heaptrack in the closing notes.
create table t(a integer primary key, b text);
with recursive c(x) as (select 1 union all select x+1 from c where x<20000) insert into t select x, hex(randomblob(20)) from c;
create index tb on t(b);
select count(*), sum(length(b)) from t;
