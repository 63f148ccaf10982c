//! Every command the documentation shows can be pasted: each ```sh block of README.md,
//! CONTRIBUTING.md and docs/*.md, and each Examples block of every `--help`, is valid shell
//! (`sh -n`), and each `amlmigrate` command in it parses with the real command line. Help
//! examples also print whole at 80 columns (clap once rewrapped them mid-command).

use super::Cli;
use clap::FromArgMatches;
use clap::error::ErrorKind;
use std::path::{Path, PathBuf};

/// A piece of shell text and where it was found.
struct Snippet {
    origin: String,
    text: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md"), root().join("CONTRIBUTING.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The ```sh blocks of a Markdown file.
fn sh_blocks(path: &Path) -> Vec<Snippet> {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.strip_prefix(root()).unwrap().display().to_string();
    let mut out = Vec::new();
    let mut open: Option<(usize, Vec<&str>)> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut open {
            None if matches!(line.trim(), "```sh" | "```bash" | "```shell") => {
                open = Some((i + 2, Vec::new()))
            }
            Some((start, lines)) if line.trim_start().starts_with("```") => {
                out.push(Snippet {
                    origin: format!("{name}:{start}"),
                    text: lines.join("\n"),
                });
                open = None;
            }
            Some((_, lines)) => lines.push(line),
            None => {}
        }
    }
    assert!(open.is_none(), "{name}: a ```sh block is not closed");
    out
}

/// The command lines of a help text, as written: the indented lines of its `Example:` and
/// `Examples:` blocks, and elsewhere the lines that start an `amlmigrate` command and the
/// lines their trailing `\` continues.
fn example_lines(help: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut block, mut continued) = (false, false);
    for line in help.lines() {
        if line.starts_with("Example") && line.trim_end().ends_with(':') {
            block = true;
            continue;
        }
        block &= line.starts_with("  ");
        if block || continued || line.starts_with("  amlmigrate ") {
            out.push(line.trim_end());
            continued = line.trim_end().ends_with('\\');
        }
    }
    out
}

/// Each command with the text of its `after_long_help` (where the examples live).
fn commands_with_after_help() -> Vec<(String, clap::Command, String)> {
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command, String)>) {
        if let Some(t) = cmd.get_after_long_help() {
            out.push((path.to_string(), cmd.clone(), t.to_string()));
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    let mut cmd = super::command();
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, "amlmigrate", &mut out);
    out
}

fn help_snippets() -> Vec<Snippet> {
    commands_with_after_help()
        .into_iter()
        .filter_map(|(path, _, text)| {
            let lines = example_lines(&text);
            (!lines.is_empty()).then(|| Snippet {
                origin: format!("`{path} --help`"),
                text: lines.join("\n"),
            })
        })
        .collect()
}

/// `sh -n`: the text is valid shell.
fn shell_syntax(text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut sh = std::process::Command::new("sh")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    sh.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = sh.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Splits shell text into simple commands (words, quotes and line continuations as sh reads
/// them; pipes, `&&`, `;` and newlines end a command; redirections and comments are dropped).
#[derive(Default)]
struct Lexer {
    commands: Vec<Vec<String>>,
    words: Vec<String>,
    word: String,
    in_word: bool,
    drop_next: bool,
}

impl Lexer {
    fn end_word(&mut self) {
        if self.in_word {
            let w = std::mem::take(&mut self.word);
            if !std::mem::take(&mut self.drop_next) {
                self.words.push(w);
            }
            self.in_word = false;
        }
    }

    fn end_command(&mut self) {
        self.end_word();
        if !self.words.is_empty() {
            self.commands.push(std::mem::take(&mut self.words));
        }
    }

    fn push(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    fn double_quoted(&mut self, it: &mut std::iter::Peekable<std::str::Chars>) {
        self.in_word = true;
        while let Some(c) = it.next() {
            match c {
                '"' => break,
                '\\' => match it.next() {
                    Some(e @ ('"' | '\\' | '$' | '`')) => self.word.push(e),
                    Some('\n') | None => {}
                    Some(e) => {
                        self.word.push('\\');
                        self.word.push(e);
                    }
                },
                c => self.word.push(c),
            }
        }
    }

    fn redirection(&mut self, it: &mut std::iter::Peekable<std::str::Chars>) {
        if self.in_word && self.word.chars().all(|d| d.is_ascii_digit()) {
            self.word.clear();
            self.in_word = false;
        } else {
            self.end_word();
        }
        if it.peek() == Some(&'>') {
            it.next();
        }
        if it.peek() == Some(&'&') {
            it.next();
            while it.peek().is_some_and(|d| d.is_ascii_digit()) {
                it.next();
            }
        } else {
            self.drop_next = true;
        }
    }

    fn lex(text: &str) -> Vec<Vec<String>> {
        let mut l = Lexer::default();
        let mut it = text.chars().peekable();
        while let Some(c) = it.next() {
            match c {
                '\\' => match it.next() {
                    Some('\n') | None => {}
                    Some(n) => l.push(n),
                },
                '\'' => {
                    l.in_word = true;
                    for n in it.by_ref() {
                        if n == '\'' {
                            break;
                        }
                        l.word.push(n);
                    }
                }
                '"' => l.double_quoted(&mut it),
                // `$(command)`: the command inside is one of its own.
                '$' if it.peek() == Some(&'(') => {
                    it.next();
                    l.end_command();
                }
                ')' => l.end_command(),
                '#' if !l.in_word => {
                    for n in it.by_ref() {
                        if n == '\n' {
                            break;
                        }
                    }
                    l.end_command();
                }
                ' ' | '\t' => l.end_word(),
                '\n' | ';' | '|' | '&' => l.end_command(),
                '>' | '<' => l.redirection(&mut it),
                c => l.push(c),
            }
        }
        l.end_command();
        l.commands
    }
}

fn assignment(word: &str) -> Option<(String, String)> {
    let (name, value) = word.split_once('=')?;
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then(|| (name.to_string(), value.to_string()))
}

type Env = Vec<(String, String)>;

/// The `amlmigrate` commands of a snippet, each with the variables set for it (`export`ed
/// earlier, in this snippet or one before it on the same page, or assigned before the command).
fn amlmigrate_commands(text: &str, exported: &mut Env) -> Vec<(Vec<String>, Env)> {
    let mut out = Vec::new();
    for words in Lexer::lex(text) {
        let mut env = exported.clone();
        let mut rest = words.as_slice();
        while let Some(a) = rest.first().and_then(|w| assignment(w)) {
            env.push(a);
            rest = &rest[1..];
        }
        let argv: Vec<String> = match rest {
            [first, args @ ..] if first == "export" => {
                exported.extend(args.iter().filter_map(|w| assignment(w)));
                continue;
            }
            [first, ..] if first == "amlmigrate" => rest.to_vec(),
            [cargo, run, ..] if cargo == "cargo" && run == "run" => {
                match rest.iter().position(|w| w == "--") {
                    Some(i) => std::iter::once("amlmigrate".to_string())
                        .chain(rest[i + 1..].iter().cloned())
                        .collect(),
                    None => continue,
                }
            }
            _ => continue,
        };
        // `[--flag value]` marks what may be left out; the command is checked with it.
        let argv = argv
            .into_iter()
            .map(|w| {
                let w = w.strip_prefix('[').unwrap_or(&w);
                w.strip_suffix(']').unwrap_or(w).to_string()
            })
            .collect();
        out.push((argv, env));
    }
    out
}

/// Parses argv as the binary does; a variable set for the command stands for the flag that
/// reads it (clap would read it from the environment, which a test cannot set safely).
fn parses(argv: &[String], env: &Env) -> Result<(), String> {
    let root = super::command();
    let mut cmd = &root;
    for w in &argv[1..] {
        match cmd.find_subcommand(w) {
            Some(sub) => cmd = sub,
            None => break,
        }
    }
    let mut argv = argv.to_vec();
    for (var, value) in env {
        let flag = cmd
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == var.as_str()))
            .and_then(|a| a.get_long());
        if let Some(long) = flag {
            let long = format!("--{long}");
            if !argv
                .iter()
                .any(|w| *w == long || w.starts_with(&format!("{long}=")))
            {
                argv.extend([long, value.clone()]);
            }
        }
    }
    match root.try_get_matches_from(&argv) {
        Ok(m) => Cli::from_arg_matches(&m)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// What is wrong with the snippets, read in order as one session (a page's exports hold for
/// the blocks after them).
fn check(snippets: &[Snippet]) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut exported = Env::new();
    for s in snippets {
        if let Err(e) = shell_syntax(&s.text) {
            wrong.push(format!("{}: not valid shell: {e}\n{}", s.origin, s.text));
        }
        // sh accepts a line that starts with a flag as a command of its own: the line before
        // it lacks its `\`.
        for words in Lexer::lex(&s.text) {
            if words[0].starts_with('-') {
                wrong.push(format!(
                    "{}: `{}` starts with a flag: the line before lacks a `\\`",
                    s.origin,
                    words.join(" ")
                ));
            }
        }
        for (argv, env) in amlmigrate_commands(&s.text, &mut exported) {
            // A value left out fails when pasted, however well it parses.
            if argv.iter().any(|w| w == "…") {
                wrong.push(format!(
                    "{}: `{}` leaves a value out (…)",
                    s.origin,
                    argv.join(" ")
                ));
            }
            if let Err(e) = parses(&argv, &env) {
                wrong.push(format!("{}: `{}`:\n{e}", s.origin, argv.join(" ")));
            }
        }
    }
    wrong
}

#[test]
fn every_command_the_readme_and_the_docs_show_parses() {
    let mut commands = 0;
    let mut wrong = Vec::new();
    for page in markdown_files() {
        let snippets = sh_blocks(&page);
        commands += snippets
            .iter()
            .map(|s| amlmigrate_commands(&s.text, &mut Env::new()).len())
            .sum::<usize>();
        wrong.extend(check(&snippets));
    }
    assert!(commands > 50, "only {commands} commands found");
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn every_help_example_parses() {
    let snippets = help_snippets();
    assert!(
        snippets.len() > 10,
        "only {} Examples blocks",
        snippets.len()
    );
    // Each command's help stands alone.
    let wrong: Vec<String> = snippets.chunks(1).flat_map(check).collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn help_examples_print_whole_at_80_columns() {
    let mut wrong = Vec::new();
    for (path, cmd, text) in commands_with_after_help() {
        let help = cmd.term_width(80).render_long_help().to_string();
        let printed: Vec<&str> = help.lines().map(str::trim_end).collect();
        for line in example_lines(&text) {
            if !printed.contains(&line) {
                wrong.push(format!("`{path} --help` breaks {line:?}"));
            }
            // Within 80 columns, so no terminal wraps it either.
            if line.chars().count() > 80 {
                wrong.push(format!(
                    "`{path} --help`: {line:?} is wider than 80 columns"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}\n", wrong.join("\n"));
}

/// The long help of every command, rendered.
fn every_long_help() -> Vec<(String, String)> {
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
        out.push((path.to_string(), cmd.clone().render_long_help().to_string()));
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    let mut cmd = super::command().term_width(0);
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, "amlmigrate", &mut out);
    out
}

#[test]
fn every_page_and_section_a_help_text_names_exists() {
    let mut wrong = Vec::new();
    let mut named = 0;
    for (path, help) in every_long_help() {
        if help.contains("README") {
            wrong.push(format!(
                "`{path} --help` names the README, which has no sections now"
            ));
        }
        for (i, _) in help.match_indices("docs/") {
            let rest = &help[i..];
            let Some(end) = rest.find(".md") else {
                continue;
            };
            named += 1;
            let page = root().join(&rest[..end + 3]);
            let Ok(text) = std::fs::read_to_string(&page) else {
                wrong.push(format!(
                    "`{path} --help` names {}, which does not exist",
                    &rest[..end + 3]
                ));
                continue;
            };
            // `docs/PAGE.md, "Section"`: a heading of that page.
            if let Some(quoted) = rest[end + 3..].strip_prefix(", \"") {
                let section = &quoted[..quoted.find('"').unwrap_or(0)];
                if !text
                    .lines()
                    .any(|l| l.starts_with('#') && l.trim_start_matches('#').trim() == section)
                {
                    wrong.push(format!(
                        "`{path} --help` names section {section:?} of {}",
                        page.display()
                    ));
                }
            }
        }
    }
    assert!(named > 0, "no help text names a page of docs/");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_lexer_reads_continuations_quotes_comments_and_pipes() {
    let text = "A=1 amlmigrate backup --cron \"0 2 * * *\" \\\n    --tag 'a b' # note\n\
                amlmigrate kube catalog > c.toml 2>&1 | kubectl apply -f - && echo ok\n\
                id=$(amlmigrate snapshots)";
    assert_eq!(
        Lexer::lex(text),
        [
            vec![
                "A=1",
                "amlmigrate",
                "backup",
                "--cron",
                "0 2 * * *",
                "--tag",
                "a b"
            ],
            vec!["amlmigrate", "kube", "catalog"],
            vec!["kubectl", "apply", "-f", "-"],
            vec!["echo", "ok"],
            vec!["id="],
            vec!["amlmigrate", "snapshots"],
        ]
    );
}
