//! "Did you mean": the names closest to one that was not found, so an error names a few likely
//! ones instead of every name there is (a server may hold hundreds of databases).

/// How alike two names must be (Jaro-Winkler, 0 to 1) to be offered; clap's threshold for
/// mistyped subcommands.
const ALIKE: f64 = 0.7;

/// Up to `n` of `names` most like `wanted`, best first; a name equal but for case comes first.
pub fn closest<'a>(
    wanted: &str,
    names: impl IntoIterator<Item = &'a str>,
    n: usize,
) -> Vec<&'a str> {
    let lower = wanted.to_lowercase();
    let mut scored: Vec<(f64, &str)> = names
        .into_iter()
        .map(|name| {
            let other = name.to_lowercase();
            let score = if other == lower {
                2.0
            } else {
                strsim::jaro_winkler(&lower, &other)
            };
            (score, name)
        })
        .filter(|(score, _)| *score >= ALIKE)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.into_iter().take(n).map(|(_, name)| name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_finds_its_name_and_an_unrelated_word_finds_none() {
        let names = [
            "aml",
            "mlflow",
            "kubeflow_pipelines",
            "Sakila",
            "sakila_copy",
            "metrics",
        ];
        assert_eq!(closest("mlfow", names, 3), ["mlflow"]);
        assert_eq!(closest("sakila", names, 3), ["Sakila", "sakila_copy"]);
        assert!(closest("nope", names, 3).is_empty());
        assert_eq!(closest("sakila", names, 1), ["Sakila"]);
    }
}
