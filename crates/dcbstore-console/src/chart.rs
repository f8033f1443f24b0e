//! The append-rate chart of the overview: server-rendered SVG, one bar per
//! minute, no script.

use chrono::{DateTime, Utc};
use maud::{html, Markup};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 140.0;
const AXIS: f64 = 18.0;

/// Bars of `minutes` (oldest first), scaled to the largest.
pub(crate) fn rate(minutes: &[(DateTime<Utc>, u64)]) -> Markup {
    let max = minutes.iter().map(|m| m.1).max().unwrap_or(0).max(1);
    let n = minutes.len().max(1) as f64;
    let slot = WIDTH / n;
    let plot = HEIGHT - AXIS;
    html! {
        svg.chart role="img" aria-label="Events appended per minute, last hour"
            viewBox={"0 0 " (WIDTH) " " (HEIGHT)} width=(WIDTH) height=(HEIGHT)
            xmlns="http://www.w3.org/2000/svg" {
            @for (i, (minute, events)) in minutes.iter().enumerate() {
                @let h = (*events as f64 / max as f64) * (plot - 12.0);
                rect.bar x=(format!("{:.1}", i as f64 * slot + 1.0)) y=(format!("{:.1}", plot - h))
                    width=(format!("{:.1}", (slot - 2.0).max(1.0))) height=(format!("{:.1}", h)) {
                    title { (minute.format("%H:%M UTC")) ": " (events) " events" }
                }
            }
            text x="0" y="10" { "max " (max) "/min" }
            @if let (Some(first), Some(last)) = (minutes.first(), minutes.last()) {
                text x="0" y=(HEIGHT - 4.0) { (first.0.format("%H:%M")) }
                text x=(WIDTH - 34.0) y=(HEIGHT - 4.0) { (last.0.format("%H:%M")) }
            }
        }
    }
}
