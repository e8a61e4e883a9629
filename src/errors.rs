//! Error helpers shared by every module.

/// The innermost cause of an error: for network errors, the one that says what happened
/// ("Connection refused") rather than the layer it surfaced in ("tcp connect error").
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    causes(e)
        .last()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// An error and each of its causes, outermost first: for matching a cause by its type.
pub(crate) fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

/// The known name nearest to `key` by edit distance, when it is near enough to be a typo
/// (`executorz` → `executors`), for "did you mean" in messages.
pub(crate) fn nearest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let distance = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let next = (prev + usize::from(ca != *cb))
                    .min(row[j] + 1)
                    .min(row[j + 1] + 1);
                prev = row[j + 1];
                row[j + 1] = next;
            }
        }
        row[b.len()]
    };
    known
        .iter()
        .map(|k| (distance(key, k), *k))
        .filter(|(d, _)| *d <= key.len().div_ceil(3).max(1))
        .min()
        .map(|(_, k)| k)
}
