//! A line chart as inline SVG: no chart library, no canvas, crisp at any width.

use codis_model::fe::HistoryPoint;
use leptos::prelude::*;

use crate::format;

const W: f64 = 600.0;
const H: f64 = 150.0;

/// The SVG path of `points` scaled into the chart box, and the highest value.
pub(crate) fn path_of(points: &[HistoryPoint]) -> (String, i64) {
    let Some(first) = points.first() else {
        return (String::new(), 0);
    };
    let last = points.last().unwrap_or(first);
    let t0 = first.time as f64;
    let span = ((last.time - first.time) as f64).max(1.0);
    let max = points.iter().map(|p| p.value).max().unwrap_or(0).max(1);
    let mut d = String::new();
    for (i, p) in points.iter().enumerate() {
        let x = (p.time as f64 - t0) / span * W;
        let y = H - (p.value as f64 / max as f64) * (H - 10.0);
        d.push_str(&format!("{}{x:.1},{y:.1}", if i == 0 { 'M' } else { 'L' }));
    }
    (d, max)
}

/// A metric over time.
#[component]
pub(crate) fn LineChart(
    /// The chart's title.
    #[prop(into)]
    title: String,
    /// Samples, oldest first.
    points: Signal<Vec<HistoryPoint>>,
    /// How a value is written.
    fmt: fn(i64) -> String,
) -> impl IntoView {
    let shape = Memo::new(move |_| points.with(|p| path_of(p)));
    let last =
        move || points.with(|p| p.last().map(|p| fmt(p.value)).unwrap_or_else(|| "–".into()));
    let range = move || {
        points.with(|p| match (p.first(), p.last()) {
            (Some(a), Some(b)) => format!("{} – {}", format::time(a.time), format::time(b.time)),
            _ => "no samples yet".into(),
        })
    };
    let label = title.clone();
    view! {
        <figure class="chart">
            <figcaption>
                <span class="chart-title">{title}</span>
                <span class="chart-last">{last}</span>
            </figcaption>
            <svg
                viewBox=format!("0 0 {W} {H}")
                preserveAspectRatio="none"
                role="img"
                aria-label=move || format!("{label}: {}, {}", last(), range())
            >
                <line x1="0" y1=H x2=W y2=H class="axis"></line>
                <path d=move || shape.get().0 class="line" vector-effect="non-scaling-stroke"></path>
            </svg>
            <div class="chart-axis">
                <span>{range}</span>
                <span>"max " {move || fmt(shape.get().1)}</span>
            </div>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_scales_into_the_box() {
        let pts = [
            HistoryPoint {
                time: 1000,
                value: 0,
            },
            HistoryPoint {
                time: 2000,
                value: 10,
            },
        ];
        let (d, max) = path_of(&pts);
        assert_eq!(max, 10);
        assert_eq!(d, "M0.0,150.0L600.0,10.0");
        assert_eq!(path_of(&[]).0, "");
    }
}
