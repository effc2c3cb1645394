//! Did-you-mean suggestions and the messages for unknown fields and values.

/// Did-you-mean: the candidate closest to `word`, if it is close enough.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| !matches!(c, '_' | '-' | ' '))
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let w = norm(word);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = strsim::damerau_levenshtein(&w, &norm(c));
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let (d, c) = best?;
    let allowed = (w.chars().count() / 3).max(1);
    (d <= allowed && c != word).then_some(c)
}

fn backtick_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn unknown_field_message(field: &str, expected: &[&str]) -> String {
    match suggest(field, expected.iter().copied()) {
        Some(s) => format!("unknown field `{field}`; did you mean `{s}`?"),
        None if expected.is_empty() => {
            format!("unknown field `{field}`; no fields are allowed here")
        }
        None => format!(
            "unknown field `{field}`; expected one of {}",
            backtick_list(expected)
        ),
    }
}

pub(crate) fn unknown_value_message(value: &str, expected: &[&str]) -> String {
    if let [only] = expected {
        return format!("must be `{only}`, found `{value}`");
    }
    let hint = suggest(value, expected.iter().copied())
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    format!(
        "unknown value `{value}`{hint} (expected one of {})",
        backtick_list(expected)
    )
}
