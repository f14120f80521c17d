//! Throughput-vs-size plot (log-log, one line per transport) as SVG, with `plotters`.

use std::path::Path;

use plotters::prelude::*;

use super::{human_size, CaseResult};

/// Writes the plot of `results` to `path`.
pub fn write_svg(results: &[CaseResult], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    if results.is_empty() {
        return Err("no results to plot".into());
    }
    let min_size = results.iter().map(|r| r.size).min().unwrap_or(1) as f64;
    let max_size = results.iter().map(|r| r.size).max().unwrap_or(2) as f64;
    let min_bps = results
        .iter()
        .map(|r| r.bytes_per_s)
        .fold(f64::INFINITY, f64::min);
    let max_bps = results.iter().map(|r| r.bytes_per_s).fold(0.0, f64::max);

    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("throughput between two processes", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (min_size / 1.5..max_size * 1.5).log_scale(),
            (min_bps / 2.0..max_bps * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("message size")
        .y_desc("bytes per second")
        .x_label_formatter(&|x| human_size(x.round() as usize))
        .y_label_formatter(&|y| format!("{:.0e}", y))
        .draw()?;

    let palette = [
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0x94, 0x67, 0xbd),
    ];
    let mut names: Vec<&str> = Vec::new();
    for r in results {
        if !names.contains(&r.transport) {
            names.push(r.transport);
        }
    }
    for (i, name) in names.iter().enumerate() {
        let color = palette[i % palette.len()];
        let mut points: Vec<(f64, f64)> = results
            .iter()
            .filter(|r| r.transport == *name)
            .map(|r| (r.size as f64, r.bytes_per_s))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
