//! Error helpers shared by every module.

/// The innermost cause of an error: for network errors, the one that says what happened
/// ("Connection refused") rather than the layer it surfaced in ("tcp connect error").
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
