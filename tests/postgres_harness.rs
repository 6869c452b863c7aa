//! The throwaway PostgreSQL of `tests/common/postgres.rs` does what the tests built on it
//! assume: a row written through `sql` is there after a crash (`stop`) and a `restart` on the
//! same port, nothing answers while the server is down, and two clusters started side by side
//! have their own ports and their own data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::postgres::Postgres;

#[test]
fn a_row_survives_a_crash_and_a_restart_on_the_same_port() {
    let mut pg = Postgres::start();
    pg.sql("create table t (x int)");
    pg.sql("insert into t values (42)");
    let addr = pg.addr;

    pg.stop();
    let refused = pg
        .try_sql("select 1")
        .expect_err("psql reached a stopped server");
    assert!(refused.contains("refused"), "{refused}");

    pg.restart();
    assert_eq!(pg.addr, addr);
    assert_eq!(pg.sql("select x from t"), "42");
}

#[test]
fn two_clusters_at_once_have_their_own_ports_and_data() {
    let a = Postgres::start();
    let b = Postgres::start();
    assert_ne!(a.addr.port(), b.addr.port());
    assert_eq!(a.url(), format!("postgres://postgres@{}/gatewayz", a.addr));

    a.sql("create table only_in_a (x int)");
    let in_b = "select count(*) from pg_tables where tablename = 'only_in_a'";
    assert_eq!(b.sql(in_b), "0");
    assert_eq!(a.sql(in_b), "1");
}
