//! Small line charts drawn on the server as SVG: no charting library, no script.

use std::fmt::Write as _;

const WIDTH: f64 = 320.0;
const HEIGHT: f64 = 96.0;
const PAD: f64 = 18.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A chart of `values` (oldest first; `None` is a gap) titled `title`, its values shown with
/// `format`. Its `<title>` and `aria-label` say the last value, for screen readers.
pub fn chart(title: &str, values: &[Option<f64>], format: &dyn Fn(f64) -> String) -> String {
    let known: Vec<f64> = values.iter().flatten().copied().collect();
    let max = known.iter().copied().fold(0.0_f64, f64::max);
    let top = if max > 0.0 { max } else { 1.0 };
    let last = values.iter().rev().flatten().next().copied();
    let said = match last {
        Some(v) => format!("{title}: {} now, {} at most", format(v), format(max)),
        None => format!("{title}: no data yet"),
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}"><title>{label}</title><rect width="100%" height="100%" fill="#ffffff"/>"##,
        label = escape(&said)
    );
    let _ = write!(
        svg,
        r##"<text x="4" y="12" font-size="11" font-family="sans-serif" fill="#1a1a1a">{}</text><text x="{}" y="12" font-size="11" font-family="sans-serif" fill="#1a1a1a" text-anchor="end">{}</text>"##,
        escape(title),
        WIDTH - 4.0,
        escape(&last.map_or_else(|| "–".into(), format))
    );
    let n = values.len().max(2) - 1;
    let x = |i: usize| PAD / 2.0 + (WIDTH - PAD) * i as f64 / n as f64;
    let y = |v: f64| HEIGHT - 4.0 - (HEIGHT - PAD - 8.0) * (v / top);
    let _ = write!(
        svg,
        r##"<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="#767676" stroke-width="1"/>"##,
        PAD / 2.0,
        HEIGHT - 4.0,
        WIDTH - PAD / 2.0
    );
    let mut run = String::new();
    let flush = |run: &mut String, svg: &mut String| {
        if run.trim_end().contains(' ') {
            let _ = write!(
                svg,
                r##"<polyline fill="none" stroke="#0b5cad" stroke-width="2" points="{}"/>"##,
                run.trim_end()
            );
        } else if let Some((x, y)) = run.trim_end().split_once(',') {
            // A point alone: a dot.
            let _ = write!(svg, r##"<circle cx="{x}" cy="{y}" r="2" fill="#0b5cad"/>"##);
        }
        run.clear();
    };
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => {
                let _ = write!(run, "{:.1},{:.1} ", x(i), y(*v));
            }
            None => flush(&mut run, &mut svg),
        }
    }
    flush(&mut run, &mut svg);
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_draws_each_run_and_says_its_last_value() {
        let svg = chart(
            "Requests <per> s",
            &[Some(1.0), Some(3.0), None, Some(2.0), Some(2.0)],
            &|v| format!("{v:.1}/s"),
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.ends_with("</svg>"));
        assert_eq!(
            svg.matches("<polyline").count(),
            2,
            "the gap splits the line"
        );
        assert!(svg.contains("Requests &lt;per&gt; s: 2.0/s now, 3.0/s at most"));
        let empty = chart("Errors", &[], &|v| format!("{v}"));
        assert!(empty.contains("no data yet"));
        assert!(!empty.contains("<polyline"));
    }
}
