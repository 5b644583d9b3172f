//! Embeds the SQL files of `migrations/` so the `jetim` binary migrates without a checkout.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let migrations_dir = manifest_dir.join("../../migrations").canonicalize()?;
    println!("cargo:rerun-if-changed={}", migrations_dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&migrations_dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    names.sort();
    let mut source = String::from("&[\n");
    for name in &names {
        let path = migrations_dir.join(name);
        writeln!(
            source,
            "    crate::migrate::Migration {{ name: {name:?}, sql: include_str!({path:?}) }},",
            path = path.display().to_string()
        )?;
    }
    source.push_str("]\n");
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("migrations.rs");
    std::fs::write(out, source)?;
    Ok(())
}
