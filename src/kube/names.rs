//! Kubernetes' own rules for names (k8s.io/apimachinery/pkg/util/validation and
//! pkg/api/validation/path). A name or namespace read from a snapshot is checked against the
//! rule of its kind before anything else looks at it: no API server serves an object whose name
//! breaks its kind's rule, so such a name in a snapshot was put there by someone else, and it
//! must never reach a request path.

/// A namespace: a DNS-1123 label (at most 63 of `a-z 0-9 -`, alphanumeric at both ends).
pub fn namespace(ns: &str) -> Result<(), String> {
    dns1123_label(ns).map_err(|e| format!("namespace {ns:?} is not a valid namespace name: {e}"))
}

/// The name of an object of `kind` in API `group`, by the rule the API server applies to it:
/// a Namespace's is a DNS-1123 label, RBAC objects' a path segment (they allow `:`, as in
/// `system:controller:…`), everything else's (custom resources included) a DNS-1123 subdomain.
pub fn object_name(kind: &str, group: &str, name: &str) -> Result<(), String> {
    let checked = match (group, kind) {
        ("", "Namespace") => dns1123_label(name),
        ("rbac.authorization.k8s.io", _) => path_segment(name),
        _ => dns1123_subdomain(name),
    };
    checked.map_err(|e| format!("name {name:?} is not a valid {kind} name: {e}"))
}

/// `IsDNS1123Label`.
pub fn dns1123_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    if s.len() > 63 {
        return Err(format!("it is {} characters long, at most 63 are", s.len()));
    }
    let ok_char = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-';
    let b = s.as_bytes();
    if !b.iter().all(|&c| ok_char(c)) || b[0] == b'-' || b[b.len() - 1] == b'-' {
        return Err(
            "it must consist of lower case alphanumeric characters or '-', and start \
                    and end with an alphanumeric character"
                .into(),
        );
    }
    Ok(())
}

/// `IsDNS1123Subdomain`: dot-separated DNS-1123 labels, at most 253 characters.
pub fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    if s.len() > 253 {
        return Err(format!(
            "it is {} characters long, at most 253 are",
            s.len()
        ));
    }
    if s.split('.').any(|l| dns1123_label(l).is_err()) {
        return Err(
            "it must consist of lower case alphanumeric characters, '-' or '.', and \
                    start and end with an alphanumeric character"
                .into(),
        );
    }
    Ok(())
}

/// `IsValidPathSegmentName`: what any name must be to stand in a request path at all.
pub fn path_segment(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    if s == "." || s == ".." {
        return Err(format!("it may not be {s:?}"));
    }
    if let Some(c) = s.chars().find(|c| matches!(c, '/' | '%')) {
        return Err(format!("it may not contain {c:?}"));
    }
    if s.chars().any(char::is_control) {
        return Err("it may not contain control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_api_servers_rules() {
        for ok in ["team-a", "a", "0ab", &"x".repeat(63)] {
            assert!(namespace(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Team",
            "-a",
            "a-",
            "a.b",
            "kube-system/rolebindings/x#",
            "kube-system?x=1",
            &"x".repeat(64),
        ] {
            assert!(namespace(bad).is_err(), "{bad}");
        }
        assert!(object_name("Notebook", "kubeflow.org", "eda.v2").is_ok());
        assert!(object_name("Notebook", "kubeflow.org", "eda#").is_err());
        assert!(object_name("Namespace", "", "a.b").is_err());
        let rbac = "rbac.authorization.k8s.io";
        assert!(object_name("RoleBinding", rbac, "system:controller:x").is_ok());
        for bad in ["..", ".", "a/b", "a%2Fb", ""] {
            assert!(object_name("RoleBinding", rbac, bad).is_err(), "{bad}");
        }
        assert!(object_name("PersistentVolume", "", "pv?x").is_err());
    }
}
