//! `--plot FILE.svg`: send→deliver latency per second over the run, and the throughput
//! curve (sent, acknowledged, delivered per second) under it.

use std::path::Path;

use plotters::prelude::*;

use super::Report;

pub(super) fn draw(report: &Report, path: &Path) -> anyhow::Result<()> {
    let seconds = &report.seconds;
    anyhow::ensure!(
        !seconds.is_empty(),
        "the {} scenario has no per-second series to plot",
        report.scenario
    );
    let root = SVGBackend::new(path, (1100, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(400);
    let end = seconds.len() as f64;

    let worst = seconds
        .iter()
        .map(|second| second.deliver_p99_ms)
        .fold(1.0, f64::max);
    let mut latency = ChartBuilder::on(&top)
        .caption(
            format!("{}: send→deliver latency per second", report.scenario),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, 0.0..worst * 1.1)?;
    latency
        .configure_mesh()
        .x_desc("seconds into the load")
        .y_desc("ms")
        .draw()?;
    for (name, color, value) in [
        (
            "p50",
            BLUE,
            (|s: &super::record::Second| s.deliver_p50_ms) as fn(&_) -> f64,
        ),
        ("p99", RED, |s| s.deliver_p99_ms),
    ] {
        latency
            .draw_series(LineSeries::new(
                seconds.iter().map(|s| (s.second as f64 + 0.5, value(s))),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
    }
    latency
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;

    let highest = seconds
        .iter()
        .map(|second| second.sent.max(second.acked).max(second.delivered))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut throughput = ChartBuilder::on(&bottom)
        .caption("throughput per second", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, 0.0..highest * 1.1)?;
    throughput
        .configure_mesh()
        .x_desc("seconds into the load")
        .y_desc("per second")
        .draw()?;
    for (name, color, value) in [
        (
            "sent",
            BLACK,
            (|s: &super::record::Second| s.sent) as fn(&_) -> u64,
        ),
        ("acked", GREEN, |s| s.acked),
        ("delivered", MAGENTA, |s| s.delivered),
    ] {
        throughput
            .draw_series(LineSeries::new(
                seconds
                    .iter()
                    .map(|s| (s.second as f64 + 0.5, value(s) as f64)),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
    }
    throughput
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    Ok(())
}
