//! The test registry of scripts/registry.sh is real: images pushed through its HTTP API
//! resolve, and wrong credentials, an untrusted certificate and a missing tag are refused the
//! way a real registry refuses them.

mod common;

use common::registry::{Registry, unique_prefix};

#[test]
fn a_pushed_image_resolves_and_a_deleted_or_missing_tag_does_not() {
    let r = Registry::get();
    let image = format!("{}/mlops/llm-trainer:v1.4.3", unique_prefix());
    assert!(!r.has(&image), "{image} exists before it was pushed");
    let digest = r.push_image(&image);
    assert_eq!(r.digest(&image).as_deref(), Some(digest.as_str()));
    // The manifest comes back as pushed, with its media type.
    let (repo, _) = image.rsplit_once(':').unwrap();
    let m = r.request(
        "GET",
        &format!("/v2/{repo}/manifests/v1.4.3"),
        &[("Accept", common::registry::OCI_MANIFEST)],
        None,
        true,
    );
    assert_eq!(m.code, 200, "{}", m.text());
    assert_eq!(m.headers["content-type"], common::registry::OCI_MANIFEST);
    let v: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
    assert_eq!(v["layers"].as_array().unwrap().len(), 1);
    // Another tag of the same repository is a different image.
    let other = format!("{repo}:v1.4.2-rc.1.ge47ab59d");
    assert!(!r.has(&other));
    r.push_image(&other);
    r.delete(&image);
    assert!(!r.has(&image) && r.has(&other));
    // A missing tag: 404 MANIFEST_UNKNOWN.
    let miss = r.request(
        "GET",
        &format!("/v2/{repo}/manifests/nope"),
        &[],
        None,
        true,
    );
    assert_eq!(miss.code, 404);
    assert!(miss.text().contains("MANIFEST_UNKNOWN"), "{}", miss.text());
}

#[test]
fn wrong_credentials_and_an_untrusted_certificate_are_refused() {
    let r = Registry::get();
    let anon = r.request("GET", "/v2/", &[], None, false);
    assert_eq!(anon.code, 401);
    assert!(
        anon.headers["www-authenticate"].starts_with("Basic realm="),
        "{:?}",
        anon.headers
    );
    let wrong = r.request_as(
        "GET",
        "/v2/_catalog",
        &[],
        None,
        Some((&r.user, "wrong")),
        &r.ca_file,
    );
    assert_eq!(wrong.code, 401);
    assert!(wrong.text().contains("UNAUTHORIZED"), "{}", wrong.text());
    let untrusted = r.request_as(
        "GET",
        "/v2/",
        &[],
        None,
        Some((&r.user, &r.password)),
        &r.other_ca_file,
    );
    assert_eq!(untrusted.code, 0, "TLS should fail with another CA");
    assert!(
        untrusted.headers["curl-error"].contains("certificate"),
        "{:?}",
        untrusted.headers
    );
    assert!(r.url.starts_with("https://127.0.0.1:"), "{}", r.url);
}
