//! Charts drawn as SVG (in the HTML report and the web console): stacked counts by outcome (allow, deny, escalate,
//! error), each with a text summary for people who do not see it. Colours are attributes, so a page whose
//! Content-Security-Policy allows no inline style still shows them. Every label is escaped.

use std::fmt::Write as _;

/// The outcomes stacked, in order.
pub const OUTCOMES: [&str; 4] = ["allow", "deny", "escalate", "error"];
/// Their colours, in the same order.
const COLOURS: [&str; 4] = ["#1f7a3a", "#b3261e", "#8a5a00", "#5b4a9e"];

/// Counts of one column or bar, in [`OUTCOMES`] order.
pub type Counts = [u64; 4];

fn escape(text: &str) -> String {
    html_escape::encode_double_quoted_attribute(text).into_owned()
}

fn legend(svg: &mut String, y: u32) {
    for (i, outcome) in OUTCOMES.iter().enumerate() {
        let x = 8 + 110 * u32::try_from(i).unwrap_or(0);
        let _ = write!(
            svg,
            r#"<rect fill="{}" x="{x}" y="{y}" width="12" height="12"/><text x="{}" y="{}">{outcome}</text>"#,
            COLOURS[i],
            x + 18,
            y + 11
        );
    }
}

/// The largest total of one column or bar: the top of the scale (at least 1).
fn largest(rows: &[(String, Counts)]) -> u64 {
    rows.iter()
        .map(|(_, c)| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1)
}

/// The finished chart: `svg` drawn in a `width` × `height` image labelled with the summary of `total`.
fn image(label: &str, total: &Counts, (width, height): (u32, u32), svg: &str) -> String {
    let text = escape(&summary(label, total));
    format!(
        r#"<svg role="img" aria-label="{text}" viewBox="0 0 {width} {height}" class="chart"><title>{text}</title>{svg}</svg>"#
    )
}

fn summary(label: &str, total: &Counts) -> String {
    let parts: Vec<String> = OUTCOMES
        .iter()
        .zip(total)
        .map(|(o, n)| format!("{n} {o}"))
        .collect();
    format!("{label}: {}", parts.join(", "))
}

/// Columns over time (one per entry of `columns`, labelled every `label_every`), stacked by outcome.
pub fn columns(label: &str, columns: &[(String, Counts)], label_every: usize) -> String {
    let (width, height, top, bottom) = (720u32, 220u32, 24u32, 40u32);
    let max = largest(columns);
    let mut total: Counts = [0; 4];
    let n = u32::try_from(columns.len().max(1)).unwrap_or(1);
    let step = (width - 40) / n;
    let plot = height - top - bottom;
    let mut svg = String::new();
    for (i, (name, counts)) in columns.iter().enumerate() {
        let x = 32 + step * u32::try_from(i).unwrap_or(0);
        let mut y = top + plot;
        for (k, count) in counts.iter().enumerate() {
            total[k] += count;
            if *count == 0 {
                continue;
            }
            let h = u32::try_from(u64::from(plot) * count / max)
                .unwrap_or(plot)
                .max(1);
            y = y.saturating_sub(h);
            let _ = write!(
                svg,
                r#"<rect fill="{}" x="{x}" y="{y}" width="{}" height="{h}"><title>{}: {count} {}</title></rect>"#,
                COLOURS[k],
                step.saturating_sub(1).max(1),
                escape(name),
                OUTCOMES[k]
            );
        }
        if label_every > 0 && i % label_every == 0 {
            let _ = write!(
                svg,
                r#"<text x="{x}" y="{}">{}</text>"#,
                top + plot + 14,
                escape(name)
            );
        }
    }
    let _ = write!(
        svg,
        r#"<text x="0" y="{}">{max}</text><text x="0" y="{}">0</text>"#,
        top + 4,
        top + plot
    );
    legend(&mut svg, height - 16);
    image(label, &total, (width, height), &svg)
}

/// One horizontal bar per entry of `bars`, stacked by outcome.
pub fn bars(label: &str, bars: &[(String, Counts)]) -> String {
    let (width, row, label_width) = (720u32, 22u32, 220u32);
    let n = u32::try_from(bars.len()).unwrap_or(0);
    let height = 12 + row * n + 30;
    let max = largest(bars);
    let span = width - label_width - 60;
    let mut total: Counts = [0; 4];
    let mut svg = String::new();
    for (i, (name, counts)) in bars.iter().enumerate() {
        let y = 8 + row * u32::try_from(i).unwrap_or(0);
        let _ = write!(svg, r#"<text x="0" y="{}">{}</text>"#, y + 14, escape(name));
        let mut x = label_width;
        for (k, count) in counts.iter().enumerate() {
            total[k] += count;
            if *count == 0 {
                continue;
            }
            let w = u32::try_from(u64::from(span) * count / max)
                .unwrap_or(span)
                .max(1);
            let _ = write!(
                svg,
                r#"<rect fill="{}" x="{x}" y="{y}" width="{w}" height="{}"><title>{}: {count} {}</title></rect>"#,
                COLOURS[k],
                row - 6,
                escape(name),
                OUTCOMES[k]
            );
            x += w;
        }
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}">{}</text>"#,
            x + 6,
            y + 14,
            counts.iter().sum::<u64>()
        );
    }
    legend(&mut svg, height - 18);
    image(label, &total, (width, height), &svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_escape_their_labels_and_say_their_totals() {
        let svg = bars(
            "Calls per tool",
            &[
                ("<script>".into(), [3, 1, 0, 0]),
                ("b".into(), [0, 0, 2, 1]),
            ],
        );
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"), "{svg}");
        assert!(
            svg.contains(r#"aria-label="Calls per tool: 3 allow, 1 deny, 2 escalate, 1 error""#),
            "{svg}"
        );
        let svg = columns("Decisions per minute", &[("12:00".into(), [0; 4])], 1);
        assert!(svg.starts_with("<svg role=\"img\""), "{svg}");
    }
}
