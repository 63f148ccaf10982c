//! TLS to MySQL checks who answers: `ssl-ca` is the only CA trusted (it replaces the built-in
//! public roots), and every hint leads to `ssl-mode=verify-identity`, never to `required`
//! (which encrypts without checking the server). Against the TLS-only MariaDB on port 3307
//! (`scripts/mariadb-tls.sh`).

mod common;

use common::*;
use std::process::Command;

fn tls_server() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mariadb-tls.sh");
    let out = Command::new("bash").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "scripts/mariadb-tls.sh could not start the TLS-only MariaDB on port 3307: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn backup_from(url: &str) -> (Run, tempfile::TempDir) {
    let (tmp, repo) = temp_repo();
    let r = amlmigrate(&[
        "backup",
        "--init",
        "--repo",
        repo.to_str().unwrap(),
        "--mysql",
        url,
        "--databases",
        "mysql",
    ]);
    (r, tmp)
}

#[test]
fn hints_for_a_tls_only_server_lead_to_verify_identity() {
    let _ca = tls_server();
    let (r, _tmp) = backup_from("mysql://root@127.0.0.1:3307");
    assert_eq!(r.code, 5, "{r:?}");
    assert!(
        r.stderr.contains("ssl-mode=verify-identity&ssl-ca=FILE"),
        "{r:?}"
    );
    assert!(!r.stderr.contains("ssl-mode=required"), "{r:?}");
}

#[test]
fn a_ca_that_did_not_sign_the_server_certificate_is_refused_with_the_fix() {
    let _ca = tls_server();
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("other-ca.pem");
    let key = tmp.path().join("other-ca-key.pem");
    let st = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=unrelated CA", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&other)
        .output()
        .unwrap();
    assert!(st.status.success(), "openssl: {st:?}");
    let url = format!(
        "mysql://root@127.0.0.1:3307?ssl-mode=verify-identity&ssl-ca={}",
        other.display()
    );
    let (r, _tmp) = backup_from(&url);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("mysql://root@127.0.0.1:3307"), "{r:?}");
    assert!(r.stderr.contains("ssl-ca=FILE"), "{r:?}");
    assert!(!r.stderr.contains("ssl-mode=required"), "{r:?}");
}
