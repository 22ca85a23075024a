//! The operators' overview above the organization list: recurring revenue
//! per currency, subscriptions by status, who is at risk, MRR over twelve
//! months and the sync's health, drawn as inline SVG (no script, no CDN),
//! each chart with a title, a description and a data table beside it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::format::{
    SUBSCRIPTION_STATUSES, date, date_time, money, month, newest_event, subscription_status,
};
use crate::billing::revenue::Mrr;
use crate::store::{AtRisk, CatchUpState, EventsOnDay, Snapshot, StatusCount};

/// Everything the overview is computed from.
pub struct OverviewFacts<'a> {
    pub mrr: &'a Mrr,
    pub statuses: &'a [StatusCount],
    pub at_risk: &'a [AtRisk],
    pub snapshots: &'a [Snapshot],
    pub events: &'a [EventsOnDay],
    pub newest_event: Option<i64>,
    pub catch_up: Option<&'a CatchUpState>,
    pub now: i64,
}

pub struct Overview {
    pub mrr: Vec<MrrLine>,
    pub statuses: Vec<StatusLine>,
    pub at_risk: Vec<RiskLine>,
    pub charts: Vec<Chart>,
    pub events_chart: Chart,
    pub newest_event: Option<String>,
    pub catch_up: Option<String>,
}

pub struct MrrLine {
    pub currency: String,
    pub mrr: String,
    pub in_trial: String,
}

pub struct StatusLine {
    pub label: &'static str,
    pub count: i64,
    pub link: String,
}

pub struct RiskLine {
    pub org_id: Option<String>,
    pub org_name: String,
    pub subscription: String,
    pub reason: String,
}

/// An inline SVG chart and the table that carries the same figures.
pub struct Chart {
    pub title: String,
    pub svg: String,
    pub rows: Vec<(String, String)>,
}

/// How the overview names a status it counts: canceled ones are this
/// month's only.
fn status_label(status: &str) -> &'static str {
    match status {
        "trialing" => "In trial",
        "canceled" => "Canceled this month",
        other => subscription_status(other).0,
    }
}

/// Whether the overview counts a status: not those of subscriptions that
/// never started.
fn is_counted(status: &str) -> bool {
    !status.starts_with("incomplete")
}

impl Overview {
    pub fn new(facts: OverviewFacts<'_>) -> Self {
        Self {
            mrr: facts
                .mrr
                .by_currency
                .iter()
                .map(|(currency, line)| MrrLine {
                    currency: currency.to_ascii_uppercase(),
                    mrr: money(line.mrr, currency),
                    in_trial: money(line.in_trial, currency),
                })
                .collect(),
            statuses: SUBSCRIPTION_STATUSES
                .into_iter()
                .filter(|status| is_counted(status))
                .map(|status| StatusLine {
                    label: status_label(status),
                    count: facts
                        .statuses
                        .iter()
                        .find(|s| s.status == *status)
                        .map_or(0, |s| s.subscriptions),
                    link: format!("/admin?status={status}"),
                })
                .collect(),
            at_risk: facts.at_risk.iter().map(risk_line).collect(),
            charts: mrr_charts(facts.snapshots),
            events_chart: events_chart(facts.events, facts.now),
            newest_event: facts.newest_event.map(|t| {
                let (when, ago) = newest_event(t, facts.now);
                format!("{when} ({ago} ago)")
            }),
            catch_up: facts.catch_up.and_then(|c| {
                let when = date_time(c.last_run_at?);
                Some(match &c.last_error {
                    Some(err) => format!("{when}: failed ({err})"),
                    None => format!("{when}: saw {}, applied {}", c.last_seen, c.last_applied),
                })
            }),
        }
    }
}

fn risk_line(r: &AtRisk) -> RiskLine {
    let reason = match r.status.as_str() {
        "past_due" => "Past due".to_owned(),
        "unpaid" => "Unpaid".to_owned(),
        _ => match r.cancel_at.or(r.current_period_end) {
            Some(t) => format!("Cancels on {}", date(t)),
            None => "Set to cancel".to_owned(),
        },
    };
    RiskLine {
        org_name: r
            .org_name
            .clone()
            .or_else(|| r.org_id.clone())
            .unwrap_or_else(|| "(no organization)".to_owned()),
        org_id: r.org_id.clone(),
        subscription: r.subscription_id.clone(),
        reason,
    }
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 160.0;
const PAD: f64 = 40.0;

/// One chart per currency: the last snapshot of each month, oldest first.
fn mrr_charts(snapshots: &[Snapshot]) -> Vec<Chart> {
    // Snapshots come oldest first: the last of each month stays.
    let mut by_currency: BTreeMap<&str, BTreeMap<i64, (String, &Snapshot)>> = BTreeMap::new();
    for s in snapshots {
        let (key, label) = month(s.day);
        by_currency
            .entry(&s.currency)
            .or_default()
            .insert(key, (label, s));
    }
    by_currency
        .into_iter()
        .map(|(currency, months)| {
            let points: Vec<(String, i64, bool)> = months
                .into_values()
                .map(|(label, s)| (label, s.mrr, s.estimate))
                .collect();
            let title = format!("MRR per month, {}", currency.to_ascii_uppercase());
            Chart {
                svg: line_chart(&title, &points, currency),
                rows: points
                    .iter()
                    .map(|(month, mrr, estimate)| {
                        let note = if *estimate { " (estimate)" } else { "" };
                        (month.clone(), format!("{}{note}", money(*mrr, currency)))
                    })
                    .collect(),
                title,
            }
        })
        .collect()
}

fn line_chart(title: &str, points: &[(String, i64, bool)], currency: &str) -> String {
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    let step = if points.len() > 1 {
        (WIDTH - 2.0 * PAD) / (points.len() - 1) as f64
    } else {
        0.0
    };
    let xy = |i: usize, v: i64| {
        (
            PAD + step * i as f64,
            HEIGHT - PAD - (v as f64 / max) * (HEIGHT - 2.0 * PAD),
        )
    };
    let mut svg = svg_open(title);
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{PAD}" y1="{base:.1}" x2="{right:.1}" y2="{base:.1}"/><text class="label" x="{PAD}" y="{top:.1}">{}</text>"#,
        escape(&money(max as i64, currency)),
        base = HEIGHT - PAD,
        right = WIDTH - PAD,
        top = PAD - 8.0,
    );
    let path: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (x, y) = xy(i, p.1);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let _ = write!(
        svg,
        r#"<polyline class="line" fill="none" points="{}"/>"#,
        path.join(" ")
    );
    for (i, (month, mrr, estimate)) in points.iter().enumerate() {
        let (x, y) = xy(i, *mrr);
        let class = if *estimate { "dot estimate" } else { "dot" };
        let _ = write!(
            svg,
            r#"<circle class="{class}" cx="{x:.1}" cy="{y:.1}" r="3"><title>{}: {}</title></circle>"#,
            escape(month),
            escape(&money(*mrr, currency))
        );
        let _ = write!(
            svg,
            r#"<text class="label" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            HEIGHT - 6.0,
            escape(month)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Events received per day for 14 days, failures in red.
fn events_chart(events: &[EventsOnDay], now: i64) -> Chart {
    let today = now - now.rem_euclid(86_400);
    let days: Vec<(i64, i64, i64)> = (0..14)
        .rev()
        .map(|back| {
            let day = today - back * 86_400;
            let found = events.iter().find(|e| e.day == day);
            (
                day,
                found.map_or(0, |e| e.received),
                found.map_or(0, |e| e.failed),
            )
        })
        .collect();
    let title = "Events received per day, last 14 days".to_owned();
    let max = days.iter().map(|d| d.1).max().unwrap_or(0).max(1) as f64;
    let slot = (WIDTH - 2.0 * PAD) / 14.0;
    let scale = |n: i64| n as f64 / max * (HEIGHT - 2.0 * PAD);
    let mut svg = svg_open(&title);
    for (i, (day, received, failed)) in days.iter().enumerate() {
        let x = PAD + slot * i as f64 + 2.0;
        let width = slot - 4.0;
        let (ok_height, failed_height) = (scale(received - failed), scale(*failed));
        let base = HEIGHT - PAD;
        let label = escape(&date(*day));
        let _ = write!(
            svg,
            r#"<rect class="bar" x="{x:.1}" y="{:.1}" width="{width:.1}" height="{ok_height:.1}"><title>{label}: {received} received</title></rect>"#,
            base - ok_height
        );
        if *failed > 0 {
            let _ = write!(
                svg,
                r#"<rect class="bar failed" x="{x:.1}" y="{:.1}" width="{width:.1}" height="{failed_height:.1}"><title>{label}: {failed} failed</title></rect>"#,
                base - ok_height - failed_height
            );
        }
    }
    svg.push_str("</svg>");
    Chart {
        rows: days
            .iter()
            .map(|(day, received, failed)| {
                (date(*day), format!("{received} received, {failed} failed"))
            })
            .collect(),
        svg,
        title,
    }
}

fn svg_open(title: &str) -> String {
    format!(
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{0}" xmlns="http://www.w3.org/2000/svg"><title>{0}</title>"#,
        escape(title)
    )
}

/// Text inside the SVG, which the template emits as it is.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_escape_their_text_and_mark_failures() {
        let events = [EventsOnDay {
            day: 1_700_006_400,
            received: 10,
            failed: 2,
        }];
        let chart = events_chart(&events, 1_700_006_400 + 3600);
        assert!(chart.svg.starts_with("<svg"));
        assert!(chart.svg.contains("class=\"bar failed\""));
        assert!(chart.svg.contains("2 failed"));
        assert_eq!(chart.rows.len(), 14);
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
