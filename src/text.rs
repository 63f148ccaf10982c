//! Untrusted text made safe to show. A snapshot, a cluster, a database or a server can put any
//! character into a tag, a host name, an object name or an error text; shown raw, an escape
//! sequence clears the screen, retitles the window or prints a fake line. Everything the tool
//! shows a person goes through here: [`Safe`] for a value in a line (every control character
//! escaped, newlines too, so one value is one line), [`escape_controls`] for whole messages
//! (newlines and tabs kept), and [`md`] / [`md_code`] for Markdown; HTML is escaped by `maud`.
//!
//! Escapes are written as JSON writes them (`\u001b`), so a JSON document passed through stays
//! valid and means the same.

use std::borrow::Cow;
use std::fmt;

/// A character that must not reach a terminal raw: C0 and C1 controls, DEL, and the Unicode
/// bidirectional overrides and isolates, which reorder what a line seems to say.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn escape_into(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c => out.push_str(&format!("\\u{:04x}", c as u32)),
    }
}

/// `s` with every unsafe character escaped but newlines and tabs, for messages of several lines
/// (errors, logs, whole outputs).
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    escape(s, |c| is_unsafe(c) && c != '\n' && c != '\t')
}

/// `s` with every unsafe character escaped, newlines and tabs too: one value, one line.
pub fn escape_line(s: &str) -> Cow<'_, str> {
    escape(s, is_unsafe)
}

fn escape(s: &str, unsafe_char: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(&unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            escape_into(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Displays a value with every control character escaped ([`escape_line`]); width and
/// alignment (`{:<30}`) apply to the escaped text.
pub struct Safe<T>(pub T);

impl<T: AsRef<str>> fmt::Display for Safe<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&escape_line(self.0.as_ref()))
    }
}

impl<T: AsRef<str>> fmt::Debug for Safe<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A value as Markdown text that means only itself: control characters escaped, every
/// character Markdown (or the HTML inside it) gives a meaning backslash-escaped, `&` and `<`
/// as entities. Safe in a table cell (`|` escaped, newlines as `\n`) and in a list item.
pub fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let chars: Vec<char> = escape_line(s).chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let word = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_some_and(|c| c.is_alphanumeric())
        };
        match c {
            // Within a word (`finetune_jobs`) an underscore emphasises nothing: left as it is.
            '_' if word(i.checked_sub(1)) && word(Some(i + 1)) => out.push('_'),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '!' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A value in a Markdown code span when it is a plain token (an id, a hash), else as [`md`]
/// text: a backtick cannot be escaped inside a code span.
pub fn md_code(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/'))
    {
        format!("`{s}`")
    } else {
        md(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_never_pass() {
        let forged = "a\x1b[2J\x1b]0;title\x07b\u{9b}31m\u{202E}c\rd\ne\tf\x7f";
        let line = Safe(forged).to_string();
        assert_eq!(
            line,
            "a\\u001b[2J\\u001b]0;title\\u0007b\\u009b31m\\u202ec\\rd\\ne\\tf\\u007f"
        );
        assert!(!line.chars().any(is_unsafe));
        let text = escape_controls(forged);
        assert!(text.contains("d\ne\tf") && !text.contains('\x1b') && !text.contains('\r'));
        assert!(matches!(escape_controls("plain ü"), Cow::Borrowed(_)));
        assert_eq!(format!("[{:<6}]", Safe("a\x1b")), "[a\\u001b]");
        assert_eq!(format!("[{:<4}]", Safe("ab")), "[ab  ]");
    }

    #[test]
    fn json_passed_through_stays_json_with_the_same_meaning() {
        let doc = serde_json::json!({"tag": "x\u{9b}y\u{202E}z"}).to_string();
        let shown = escape_controls(&doc);
        let back: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(back["tag"], "x\u{9b}y\u{202E}z");
    }

    #[test]
    fn markdown_cells_mean_only_their_text() {
        assert_eq!(
            md("a|b`c*d_e[f](g)<h>&\n# 1.4"),
            "a\\|b\\`c\\*d_e\\[f\\](g)&lt;h&gt;&amp;\\\\n# 1.4"
        );
        assert_eq!(md("finetune_jobs _x_ a_"), "finetune_jobs \\_x\\_ a\\_");
        assert_eq!(md_code("0123abcd"), "`0123abcd`");
        assert_eq!(md_code("a`b"), "a\\`b");
    }
}
