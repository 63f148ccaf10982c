//! dex's `config.yaml` (ConfigMap `cpaas-system/dex-configmap` of the global cluster): the
//! article adds the Kubeflow oauth2 callback to `redirectURIs`, and it must equal kfbase's
//! `oidcRedirectURL`. The edit is textual — one line added to the list — so every other byte of
//! the file (comments, order, quoting) stays as it was; the result is parsed again and must
//! differ from the original by exactly that URI.

use serde_json::Value;

use crate::error::{Error, Result};

/// The static client whose redirect URIs ACP's login uses.
pub(super) const CLIENT: &str = "alauda-auth";

fn parse(text: &str) -> Result<Value> {
    serde_saphyr::from_str(text)
        .map_err(|e| Error::other(format!("dex's config.yaml is not YAML: {e}")))
}

/// Which static client gets the URI: `alauda-auth`, or the only one there is.
fn client_index(conf: &Value) -> Result<usize> {
    let clients = conf["staticClients"].as_array().ok_or_else(|| {
        Error::other("dex's config.yaml has no staticClients: add the redirect URI by hand")
    })?;
    match clients.iter().position(|c| c["id"] == CLIENT) {
        Some(i) => Ok(i),
        None if clients.len() == 1 => Ok(0),
        None => Err(Error::other(format!(
            "dex's config.yaml has no static client {CLIENT} and {} others: add the redirect URI to the right one by hand",
            clients.len()
        ))),
    }
}

/// Does dex already list `uri`?
pub(super) fn lists(text: &str, uri: &str) -> Result<bool> {
    let conf = parse(text)?;
    let i = client_index(&conf)?;
    Ok(conf["staticClients"][i]["redirectURIs"]
        .as_array()
        .is_some_and(|u| u.iter().any(|x| x == uri)))
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// A scalar YAML reads back as exactly `s`.
fn scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.starts_with([
            '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%',
            '@', '`',
        ])
        && !s.ends_with(':')
        && s.trim() == s;
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("a string serializes")
    }
}

/// The last item line of the block list under `key_line`: items follow at the key's column
/// ("- x", compact) or deeper; comments and blank lines are passed over.
fn last_item(lines: &[&str], key_line: usize, key_col: usize) -> Option<usize> {
    let mut last = None;
    for (n, l) in lines.iter().enumerate().skip(key_line + 1) {
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        let item = l.trim_start_matches(' ').starts_with("- ");
        if indent(l) > key_col || (indent(l) == key_col && item) {
            if item {
                last = Some(n);
            }
        } else {
            break;
        }
    }
    last
}

/// `text` with `uri` added to the client's `redirectURIs`; `None` when it is there already.
pub(super) fn add_redirect_uri(text: &str, uri: &str) -> Result<Option<String>> {
    let conf = parse(text)?;
    let i = client_index(&conf)?;
    if lists(text, uri)? {
        return Ok(None);
    }
    let id = conf["staticClients"][i]["id"].as_str().unwrap_or("");
    let by_hand = |why: &str| {
        Error::other(format!(
            "cannot add {uri} to dex's redirectURIs of client {id} without touching the rest of config.yaml ({why}): add it by hand (kubectl -n cpaas-system edit configmap dex-configmap)"
        ))
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let bare = |l: &str| {
        l.trim_start_matches(' ')
            .trim_start_matches("- ")
            .trim_end()
            .to_string()
    };
    let is_id = |l: &str| {
        let b = bare(l);
        b.strip_prefix("id:").is_some_and(|v| {
            let v = v.split(" #").next().unwrap_or("").trim();
            v.trim_matches(['"', '\'']) == id
        })
    };
    let start = lines
        .iter()
        .position(|l| bare(l) == "staticClients:")
        .ok_or_else(|| by_hand("staticClients is not a block"))?;
    let id_line = (start + 1..lines.len())
        .find(|&n| is_id(lines[n]))
        .ok_or_else(|| by_hand("its id line was not found"))?;
    // The client's keys sit at the column of `id` (after the `- ` of the list item).
    let key_col = {
        let l = lines[id_line];
        let after_dash = l.trim_start_matches(' ');
        indent(l) + if after_dash.starts_with("- ") { 2 } else { 0 }
    };
    let key_line = (id_line + 1..lines.len())
        .take_while(|&n| {
            let l = lines[n];
            l.trim().is_empty() || l.trim_start().starts_with('#') || indent(l) >= key_col
        })
        .find(|&n| indent(lines[n]) == key_col && bare(lines[n]).starts_with("redirectURIs:"))
        .ok_or_else(|| by_hand("the client has no redirectURIs block"))?;
    let rest = bare(lines[key_line])["redirectURIs:".len()..]
        .trim()
        .to_string();
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    if rest.starts_with('[') {
        let l = &out[key_line];
        let close = l
            .rfind(']')
            .ok_or_else(|| by_hand("a flow list over several lines"))?;
        let empty = rest.trim_start_matches('[').trim_start().starts_with(']');
        let sep = if empty { "" } else { ", " };
        out[key_line] = format!("{}{sep}{}{}", &l[..close], scalar(uri), &l[close..]);
    } else {
        if !rest.is_empty() && !rest.starts_with('#') {
            return Err(by_hand("redirectURIs is not a list"));
        }
        // The new item goes after the last one, with its indentation.
        let last = last_item(&lines, key_line, key_col);
        let at = last.ok_or_else(|| by_hand("redirectURIs has no item to align with"))?;
        let prefix = " ".repeat(indent(lines[at]));
        let newline = if lines[at].ends_with('\n') { "" } else { "\n" };
        out[at] = format!("{}{newline}", out[at]);
        out.insert(at + 1, format!("{prefix}- {}\n", scalar(uri)));
    }
    let new_text: String = out.concat();
    // The only difference must be the one URI.
    let mut want = conf.clone();
    want["staticClients"][i]["redirectURIs"]
        .as_array_mut()
        .ok_or_else(|| by_hand("redirectURIs is not a list"))?
        .push(Value::String(uri.to_string()));
    if parse(&new_text)? != want {
        return Err(by_hand(
            "the edited file does not read back as the original plus the URI",
        ));
    }
    Ok(Some(new_text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "https://192.168.139.133:30665/oauth2/callback";

    #[test]
    fn the_uri_is_added_to_the_block_list_and_every_other_byte_stays() {
        let text = "# dex, managed by ACP\nissuer: https://x/dex  # public\nstaticClients:\n- id: other\n  redirectURIs:\n  - https://o/*\n- id: alauda-auth\n  name: 'Alauda auth'\n  redirectURIs:\n  # the console\n  - http://192.168.171.123/*\n  - https://192.168.171.123/*   # https\n  secret: x\nenablePasswordDB: true\n";
        let out = add_redirect_uri(text, URI).unwrap().unwrap();
        assert_eq!(
            out,
            text.replace(
                "  - https://192.168.171.123/*   # https\n",
                &format!("  - https://192.168.171.123/*   # https\n  - {URI}\n")
            )
        );
        assert!(lists(&out, URI).unwrap());
        assert_eq!(add_redirect_uri(&out, URI).unwrap(), None);
    }

    #[test]
    fn indented_lists_and_flow_lists_keep_their_style() {
        let text = "staticClients:\n  - id: alauda-auth\n    redirectURIs:\n      - \"http://a/*\"\n    name: x\n";
        let out = add_redirect_uri(text, URI).unwrap().unwrap();
        assert!(
            out.contains(&format!(
                "      - \"http://a/*\"\n      - {URI}\n    name: x"
            )),
            "{out}"
        );
        let text = "staticClients:\n- id: alauda-auth\n  redirectURIs: [http://a/*]  # flow\n";
        let out = add_redirect_uri(text, URI).unwrap().unwrap();
        assert_eq!(
            out,
            format!(
                "staticClients:\n- id: alauda-auth\n  redirectURIs: [http://a/*, {URI}]  # flow\n"
            )
        );
    }

    #[test]
    fn a_layout_it_cannot_edit_safely_is_refused_with_the_manual_fix() {
        let text = "staticClients:\n- id: alauda-auth\n  redirectURIs: [\n    http://a/*]\n";
        let e = add_redirect_uri(text, URI).unwrap_err().to_string();
        assert!(e.contains("add it by hand"), "{e}");
        let e = add_redirect_uri("staticClients:\n- id: a\n- id: b\n", URI)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no static client alauda-auth"), "{e}");
    }
}
