//! `${VAR}` interpolation for config files, collecting every problem before failing.

/// Interpolation failed; lists every missing or invalid variable at once.
#[derive(Debug, thiserror::Error)]
#[error("config interpolation failed: {}", problems.join("; "))]
pub struct InterpolateError {
    /// One entry per problem.
    pub problems: Vec<String>,
}

/// Replaces `${VAR}`, `${VAR:-default}` and `${VAR:?message}` in `text`; `$$` is a literal `$`.
///
/// Values containing newlines are rejected: they would change the YAML's structure.
///
/// # Errors
/// Lists every unset variable without a default and every value with a newline.
pub fn interpolate(
    text: &str,
    get: impl Fn(&str) -> Option<String>,
) -> Result<String, InterpolateError> {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let Some(body_and_tail) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body_and_tail.find('}') else {
            problems.push("unterminated ${".to_owned());
            out.push_str(&rest[pos..]);
            rest = "";
            break;
        };
        let body = &body_and_tail[..end];
        rest = &body_and_tail[end + 1..];
        let (name, default, required_msg) = if let Some((n, d)) = body.split_once(":-") {
            (n, Some(d), None)
        } else if let Some((n, m)) = body.split_once(":?") {
            (n, None, Some(m))
        } else {
            (body, None, None)
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            problems.push(format!("invalid variable name {name:?}"));
            continue;
        }
        match get(name).filter(|v| !v.is_empty()) {
            Some(v) if v.contains('\n') => problems.push(format!("${{{name}}} contains a newline")),
            Some(v) => out.push_str(&v),
            None => match (default, required_msg) {
                (Some(d), _) => out.push_str(d),
                (_, Some(m)) if !m.is_empty() => {
                    problems.push(format!("${{{name}}} is not set: {m}"))
                }
                _ => problems.push(format!("${{{name}}} is not set")),
            },
        }
    }
    out.push_str(rest);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(InterpolateError { problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "NL" => Some("x\ny".into()),
            _ => None,
        }
    }

    #[test]
    fn replaces_defaults_and_escapes() {
        assert_eq!(
            interpolate("a=${A} b=${B:-beta} c=$$ d=$x", env).unwrap(),
            "a=alpha b=beta c=$ d=$x"
        );
    }

    #[test]
    fn collects_every_problem() {
        let e = interpolate("${X} ${Y:?set Y please} ${NL} ${bad-name}", env).unwrap_err();
        assert_eq!(e.problems.len(), 4, "{:?}", e.problems);
        assert!(e.to_string().contains("set Y please"));
    }
}
