//! Embeds every setup page under `assets/setup/` so the binary needs no files at run time.

use std::{env, fs, path::Path};

fn main() {
    let dir = Path::new("assets/setup");
    println!("cargo:rerun-if-changed=assets/setup");
    // sqlx's migrate! embeds the migrations, but cargo does not see a new or changed file.
    println!("cargo:rerun-if-changed=src/store/migrations");
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".md"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = String::from("pub(crate) static SETUP_PAGES: &[(&str, &str)] = &[\n");
    for name in &names {
        println!("cargo:rerun-if-changed=assets/setup/{name}");
        out.push_str(&format!(
            "    ({name:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/assets/setup/{name}\"))),\n"
        ));
    }
    out.push_str("];\n");
    let dest = Path::new(&env::var("OUT_DIR").unwrap()).join("setup_pages.rs");
    fs::write(dest, out).unwrap();
}
