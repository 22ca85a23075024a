//! `GET /admin/export/subscriptions.csv`: every subscription, one row each,
//! streamed a page at a time so a large account is never held in memory.

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use futures_util::stream;

use crate::state::AppState;
use crate::store::{ExportRow, Store};
use crate::views::format::{date, monthly_amount};
use crate::web::guards::Operator;

const PAGE: i64 = 500;
const HEADER: [&str; 15] = [
    "organization",
    "organization_name",
    "customer_name",
    "customer_email",
    "subscription",
    "status",
    "plan",
    "interval",
    "quantity",
    "currency",
    "unit_amount",
    "mrr",
    "current_period_end",
    "cancel_at_period_end",
    "created",
];

pub async fn subscriptions(_: Operator, state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.clone();
    // (after this id, header written, done)
    let pages = stream::unfold(
        (String::new(), false, false),
        move |(after, started, done)| {
            let store = store.clone();
            async move {
                if done {
                    return None;
                }
                if !started {
                    return Some((
                        Ok(csv_lines(&[HEADER.map(str::to_owned).to_vec()])),
                        (after, true, false),
                    ));
                }
                match page(&store, &after).await {
                    Ok((bytes, last, more)) => Some((Ok(bytes), (last, true, !more))),
                    Err(err) => {
                        log::error!("the subscriptions export failed: {err:#}");
                        Some((
                            Err(actix_web::error::ErrorInternalServerError("export failed")),
                            (after, true, true),
                        ))
                    }
                }
            }
        },
    );
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"subscriptions.csv\"",
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(pages)
}

/// The CSV of the page after `after`, its last id, and whether more follow.
async fn page(store: &Store, after: &str) -> anyhow::Result<(Bytes, String, bool)> {
    let rows = store.export_page(after, PAGE).await?;
    let last = rows.last().map_or_else(String::new, |r| r.id.clone());
    let more = rows.len() as i64 == PAGE;
    let records: Vec<Vec<String>> = rows.iter().map(record).collect();
    Ok((csv_lines(&records), last, more))
}

fn record(row: &ExportRow) -> Vec<String> {
    let opt = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    let mrr = match (
        row.status.as_str(),
        row.unit_amount,
        &row.recurring_interval,
    ) {
        ("active" | "past_due", Some(amount), Some(interval)) => monthly_amount(
            amount,
            row.quantity.unwrap_or(1),
            interval,
            row.interval_count.unwrap_or(1),
        )
        .to_string(),
        _ => "0".to_owned(),
    };
    vec![
        row.org_id.clone().unwrap_or_default(),
        row.org_name
            .clone()
            .or_else(|| row.org_id.clone())
            .unwrap_or_default(),
        row.customer_name.clone().unwrap_or_default(),
        row.customer_email.clone().unwrap_or_default(),
        row.id.clone(),
        row.status.clone(),
        row.plan.clone().unwrap_or_default(),
        match (&row.recurring_interval, row.interval_count) {
            (Some(i), Some(n)) if n > 1 => format!("{n} {i}"),
            (Some(i), _) => i.clone(),
            (None, _) => String::new(),
        },
        opt(row.quantity),
        row.currency.clone().unwrap_or_default(),
        opt(row.unit_amount),
        mrr,
        row.current_period_end.map(date).unwrap_or_default(),
        row.cancel_at_period_end.to_string(),
        date(row.created),
    ]
}

/// RFC 4180 lines: a field with a comma, quote or line break is quoted, its
/// quotes doubled; a field a spreadsheet would run as a formula is defused.
fn csv_lines(records: &[Vec<String>]) -> Bytes {
    let mut out = String::new();
    for record in records {
        let fields: Vec<String> = record.iter().map(|f| csv_field(f)).collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    Bytes::from(out)
}

fn csv_field(field: &str) -> String {
    let field = defused(field);
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.into_owned()
    }
}

/// A cell that starts like a formula (`= + - @`, tab or CR: OWASP's list)
/// gets a leading `'`, so a spreadsheet shows it as text. Names come from
/// Stripe's catalog and Clerk's slugs, which others write; a plain number
/// (a negative amount) is left as it is.
fn defused(field: &str) -> std::borrow::Cow<'_, str> {
    let risky = field.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && field.parse::<i64>().is_err() {
        std::borrow::Cow::Owned(format!("'{field}"))
    } else {
        std::borrow::Cow::Borrowed(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_commas_quotes_or_breaks_are_quoted() {
        assert_eq!(csv_field("acme"), "acme");
        assert_eq!(csv_field("Acme, Inc."), "\"Acme, Inc.\"");
        assert_eq!(csv_field("The \"Best\""), "\"The \"\"Best\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn cells_that_start_like_formulas_are_shown_as_text() {
        for (cell, written) in [
            (
                "=HYPERLINK(\"https://evil.test\")",
                "\"'=HYPERLINK(\"\"https://evil.test\"\")\"",
            ),
            ("+1+2", "'+1+2"),
            ("-1+2", "'-1+2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tcmd", "'\tcmd"),
            ("\rcmd", "\"'\rcmd\""),
            ("-4900", "-4900"),
            ("Pro", "Pro"),
        ] {
            assert_eq!(csv_field(cell), written, "{cell:?}");
        }
    }
}
