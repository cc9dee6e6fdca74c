//! Sets `cfg(scimd_pg)` when `SCIMD_TEST_POSTGRES_URL` names a PostgreSQL server: the
//! PostgreSQL tests of the command line (`tests/it/cli.rs`) run then, and are reported as
//! ignored otherwise.

fn main() {
    println!("cargo::rerun-if-env-changed=SCIMD_TEST_POSTGRES_URL");
    println!("cargo::rustc-check-cfg=cfg(scimd_pg)");
    if std::env::var_os("SCIMD_TEST_POSTGRES_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=scimd_pg");
    }
}
