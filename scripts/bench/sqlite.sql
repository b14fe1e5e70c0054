-- sqlite3 :memory: ".read scripts/bench/sqlite.sql" (run.py's sqlite3 row):
-- a 50,000-row insert, two indexes, then selects through them and a group by.
create table t(a integer primary key, b text, c integer);
with recursive n(x) as (select 1 union all select x+1 from n where x<50000)
  insert into t select x, hex(randomblob(20)), abs(random()) % 1000 from n;
create index tb on t(b);
create index tc on t(c);
select count(*), sum(length(b)) from t;
select c, count(*), max(b) from t group by c order by 2 desc limit 5;
select count(*) from t where b between 'A' and 'B';
select sum(a) from t where c in (1, 2, 3, 500);
select count(*) from t t1 join t t2 on t1.c = t2.c where t1.a < 200;
