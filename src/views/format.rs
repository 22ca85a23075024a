//! How amounts, dates and states read on the pages. Pure functions.

use time::OffsetDateTime;
use time::macros::format_description;

/// Currencies Stripe counts in whole units (no minor unit).
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];
/// Currencies with three decimals.
const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];

/// How long ago, roughly: `45 s`, `12 min`, `5 h`, `3 d`.
pub fn age(secs: i64) -> String {
    match secs.max(0) {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// The newest stored event: when, and how long before `now`.
pub fn newest_event(created: i64, now: i64) -> (String, String) {
    (date_time(created), age(now - created))
}

/// `4900, "usd"` → `$49.00`; `4900, "jpy"` → `¥4,900`; `1050, "chf"` → `CHF 10.50`.
pub fn money(minor: i64, currency: &str) -> String {
    let currency = currency.to_ascii_lowercase();
    let decimals = if ZERO_DECIMAL.contains(&currency.as_str()) {
        0
    } else if THREE_DECIMAL.contains(&currency.as_str()) {
        3
    } else {
        2
    };
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    let divisor = 10u64.pow(decimals);
    let whole = group_thousands(magnitude / divisor);
    let amount = if decimals == 0 {
        whole
    } else {
        format!(
            "{whole}.{:0width$}",
            magnitude % divisor,
            width = decimals as usize
        )
    };
    match symbol(&currency) {
        Some(symbol) => format!("{sign}{symbol}{amount}"),
        None => format!("{sign}{} {amount}", currency.to_ascii_uppercase()),
    }
}

fn symbol(currency: &str) -> Option<&'static str> {
    Some(match currency {
        "usd" => "$",
        "eur" => "€",
        "gbp" => "£",
        "jpy" => "¥",
        "inr" => "₹",
        "krw" => "₩",
        _ => return None,
    })
}

/// `-1234567` → `-1,234,567`.
pub fn whole(n: i64) -> String {
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", group_thousands(n.unsigned_abs()))
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1700000000` → `Nov 14, 2023` (UTC).
pub fn date(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(format_description!(
                "[month repr:short] [day padding:none], [year]"
            ))
            .ok()
        })
        .unwrap_or_else(|| "—".to_owned())
}

/// `1700000000` → `(202311, "Nov 2023")`: a month's sort key and label.
pub fn month(unix: i64) -> (i64, String) {
    match OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => (
            i64::from(t.year()) * 100 + i64::from(u8::from(t.month())),
            t.format(format_description!("[month repr:short] [year]"))
                .unwrap_or_default(),
        ),
        Err(_) => (0, "—".to_owned()),
    }
}

/// `1700000000` → `Nov 14, 2023 22:13 UTC`.
pub fn date_time(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(format_description!(
                "[month repr:short] [day padding:none], [year] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| "—".to_owned())
}

/// `month, 1` → `month`; `month, 3` → `3 months`.
pub fn interval(interval: &str, count: i64) -> String {
    if count <= 1 {
        interval.to_owned()
    } else {
        format!("{count} {interval}s")
    }
}

/// A status's label and its badge style.
/// Every subscription status Stripe sends, in the order pages list them.
pub const SUBSCRIPTION_STATUSES: [&str; 8] = [
    "active",
    "trialing",
    "past_due",
    "unpaid",
    "canceled",
    "paused",
    "incomplete",
    "incomplete_expired",
];

pub fn subscription_status(status: &str) -> (&'static str, &'static str) {
    match status {
        "active" => ("Active", "ok"),
        "trialing" => ("Trial", "info"),
        "past_due" => ("Past due", "warn"),
        "unpaid" => ("Unpaid", "danger"),
        "canceled" => ("Canceled", "muted"),
        "paused" => ("Paused", "muted"),
        "incomplete" => ("Incomplete", "warn"),
        "incomplete_expired" => ("Expired", "muted"),
        _ => ("Unknown", "muted"),
    }
}

pub fn invoice_status(status: Option<&str>) -> (&'static str, &'static str) {
    match status {
        Some("paid") => ("Paid", "ok"),
        Some("open") => ("Open", "warn"),
        Some("void") => ("Void", "muted"),
        Some("uncollectible") => ("Uncollectible", "danger"),
        _ => ("Draft", "muted"),
    }
}

/// Monthly recurring revenue of `unit_amount × quantity` billed every
/// `count` `interval`s, in minor units.
pub fn monthly_amount(unit_amount: i64, quantity: i64, interval: &str, count: i64) -> i64 {
    crate::billing::revenue::monthly(unit_amount.saturating_mul(quantity.max(0)), interval, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_respects_each_currencys_minor_unit() {
        assert_eq!(money(4900, "usd"), "$49.00");
        assert_eq!(money(123_456_789, "usd"), "$1,234,567.89");
        assert_eq!(money(5, "eur"), "€0.05");
        assert_eq!(money(4900, "jpy"), "¥4,900");
        assert_eq!(money(4900, "JPY"), "¥4,900");
        assert_eq!(money(1_000_000, "krw"), "₩1,000,000");
        assert_eq!(money(1050, "chf"), "CHF 10.50");
        assert_eq!(money(12_345, "kwd"), "KWD 12.345");
        assert_eq!(money(-250, "gbp"), "-£2.50");
        assert_eq!(money(0, "usd"), "$0.00");
        assert_eq!(whole(-1_234_567), "-1,234,567");
        assert_eq!(whole(500), "500");
    }

    #[test]
    fn dates_and_intervals_read_naturally() {
        assert_eq!(date(1_700_000_000), "Nov 14, 2023");
        assert_eq!(date_time(1_700_000_000), "Nov 14, 2023 22:13 UTC");
        assert_eq!(interval("month", 1), "month");
        assert_eq!(interval("month", 3), "3 months");
    }

    #[test]
    fn every_stripe_status_has_a_label() {
        for status in SUBSCRIPTION_STATUSES {
            assert_ne!(subscription_status(status).0, "Unknown", "{status}");
        }
    }

    #[test]
    fn mrr_normalizes_intervals() {
        assert_eq!(monthly_amount(4900, 3, "month", 1), 14_700);
        assert_eq!(monthly_amount(120_000, 1, "year", 1), 10_000);
        assert_eq!(monthly_amount(3000, 1, "month", 3), 1000);
    }
}
