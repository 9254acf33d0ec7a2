//! Kubernetes resource quantities (`500m`, `10Gi`, `1.5`, `2e3`) as numbers, to compare a
//! ResourceQuota's `used` with its `hard`. k8s-openapi keeps them as strings and no
//! maintained crate parses them, so this follows the API's own grammar, briefly.

/// The value of a quantity, or `None` when it is not one.
pub fn parse(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let n: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp => {
            let e: i32 = exp.strip_prefix(['e', 'E'])?.parse().ok()?;
            10f64.powi(e)
        }
    };
    Some(n * factor)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn quantities_read_as_the_api_writes_them() {
        assert_eq!(parse("500m"), Some(0.5));
        assert_eq!(parse("10Gi"), Some(10.0 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(parse("2"), Some(2.0));
        assert_eq!(parse("1.5k"), Some(1500.0));
        assert_eq!(parse("2e3"), Some(2000.0));
        assert_eq!(parse("10 apples"), None);
        assert_eq!(parse(""), None);
    }
}
