//! Restore into another server, over verified TLS: a second real MariaDB on 127.0.0.1:3307
//! that accepts only TLS connections, with a certificate from a private CA
//! (`scripts/mariadb-tls.sh` starts it when it is not running).

mod common;

use common::*;

#[test]
fn restore_into_another_server_over_verified_tls_is_exact() {
    let ca = tls_server();
    let client_tls = ["-P3307", "--ssl", &format!("--ssl-ca={ca}")].map(|s| s.to_string());
    let client: Vec<&str> = client_tls.iter().map(String::as_str).collect();
    let src = TestDb::with_fixture("tls_src");
    let (_tmp, repo) = temp_repo();
    backup(&repo, &src.name);
    let target = format!("{}_remote", src.name);
    let url = format!("mysql://root@127.0.0.1:3307?ssl-mode=verify-identity&ssl-ca={ca}");

    let r = amlmigrate(&[
        "restore",
        "--repo",
        repo.to_str().unwrap(),
        "latest",
        "--mysql",
        &url,
        "--rename",
        &format!("{}={target}", src.name),
        "--json",
    ]);
    let remote = checksums_at(&client, &target);
    sql_at(
        &client,
        None,
        &format!("DROP DATABASE IF EXISTS `{target}`"),
    );
    assert_eq!(r.code, 0, "{r:?}");
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        j["restore"]["target"], "mysql://root@127.0.0.1:3307",
        "no parameters or secrets in the report"
    );
    assert_eq!(remote, checksums(&src.name));
}

#[test]
fn a_tls_only_server_and_an_unknown_ca_get_errors_that_name_the_fix() {
    let _ca = tls_server();
    let (_tmp, repo) = temp_repo();
    let plain = amlmigrate(&[
        "backup",
        "--init",
        "--repo",
        repo.to_str().unwrap(),
        "--mysql",
        "mysql://root@127.0.0.1:3307",
    ]);
    assert_eq!(plain.code, 5, "{plain:?}");
    assert!(plain.stderr.contains("ssl-mode="), "{plain:?}");
    let unverified = amlmigrate(&[
        "backup",
        "--init",
        "--repo",
        repo.to_str().unwrap(),
        "--mysql",
        "mysql://root@127.0.0.1:3307?ssl-mode=verify-identity",
    ]);
    assert_eq!(unverified.code, 5, "{unverified:?}");
    assert!(unverified.stderr.contains("ssl-ca=FILE"), "{unverified:?}");
    assert!(!repo.join("snapshots").exists());
}
