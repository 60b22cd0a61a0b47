//! Tools: `demo`, `generate`, `template` and `bench`.

use std::path::PathBuf;

use anyhow::Context;

use palaute::ops::{demo as demo_run, exit, template as tpl};

use crate::args::{DemoArgs, GenKind, GenerateArgs, TemplateArgs, TemplateFormat};

/// `palaute demo`: generate the demo exports, run the demo pipelines, print the result.
pub async fn demo(a: DemoArgs) -> anyhow::Result<i32> {
    let out = demo_run::run(&a.dir, a.seed).await?;
    print!("{out}");
    Ok(0)
}

/// `palaute generate`: the demo's exports and pipelines, or a benchmark export.
pub fn generate(a: GenerateArgs) -> anyhow::Result<i32> {
    match a.kind {
        GenKind::Demo => demo_run::generate(&a.out, a.seed, palaute::demo::county::MONTHS.len())?,
        GenKind::Bench => palaute::demo::bench_data::write(&a.out, a.rows, a.seed)?,
    }
    println!("wrote {}", a.out.display());
    Ok(0)
}

/// A pipeline file's name as a valid pipeline name.
fn pipeline_name(file: &std::path::Path) -> String {
    file.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("paper")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `palaute template`: a keying template for paper forms, and optionally its pipeline.
pub fn template(a: TemplateArgs) -> anyhow::Result<i32> {
    let catalog = palaute::schema::Catalog::embedded();
    let instrument = a.instrument;
    let version = match (a.version, catalog.instrument(&instrument)) {
        (Some(v), _) => v,
        (None, Ok(i)) => i
            .versions
            .last()
            .map(|v| v.version.clone())
            .unwrap_or_default(),
        (None, Err(e)) => {
            eprintln!("palaute: {e}");
            return Ok(exit::CONFIG);
        }
    };
    let cols = match tpl::columns(catalog, &instrument, &version, &a.language) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("palaute: {e}");
            return Ok(exit::CONFIG);
        }
    };
    let xlsx = a.format == TemplateFormat::Xlsx;
    let out = a.output.unwrap_or_else(|| {
        PathBuf::from(format!(
            "{instrument}_template.{}",
            if xlsx { "xlsx" } else { "csv" }
        ))
    });
    if xlsx {
        tpl::write_xlsx(&out, &cols, &a.language)?;
    } else {
        tpl::write_csv(&out, &cols)?;
    }
    println!(
        "wrote {} ({} columns, instrument {instrument} version {version}, channel paper)",
        out.display(),
        cols.len()
    );
    if let Some(p) = a.pipeline {
        let name = pipeline_name(&p);
        let yaml = tpl::pipeline_yaml(&name, &instrument, &version, &cols, xlsx, &a.location);
        std::fs::write(&p, yaml).with_context(|| format!("writing {}", p.display()))?;
        println!(
            "wrote {} (loads filled templates from {})",
            p.display(),
            a.location
        );
    }
    Ok(0)
}

/// `palaute bench`: measure the pipeline on a generated export.
pub async fn bench(a: palaute::ops::bench::BenchArgs) -> anyhow::Result<i32> {
    palaute::ops::bench::run(&a).await?;
    Ok(0)
}
